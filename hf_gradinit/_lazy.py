"""Lazy package exports (PEP 562): a public name loads its module the first time it is used."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str], moved: dict[str, str] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`: `exports` maps a name to the module (relative to `package`) that
    defines it; `moved` maps names the package no longer exports to their new module, resolved with a warning."""
    moved = moved or {}

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name], package), name)
            setattr(importlib.import_module(package), name, value)  # later lookups skip this function
            return value
        if name in moved:
            warnings.warn(
                f"{package}.{name} has moved: import it from {moved[name]} (the old name will be removed).",
                FutureWarning,
                stacklevel=2,
            )
            return getattr(importlib.import_module(moved[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*exports, *vars(importlib.import_module(package))})

    return __getattr__, __dir__
