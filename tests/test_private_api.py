"""Every private API listed in hf_gradinit/_private_api.py exists in the installed versions."""

from __future__ import annotations

import importlib
import inspect

import pytest

from hf_gradinit._private_api import PRIVATE_APIS


@pytest.mark.parametrize(("module", "name", "use"), PRIVATE_APIS, ids=[f"{m}:{n}" for m, n, _ in PRIVATE_APIS])
def test_private_api_is_present(module: str, name: str, use: str) -> None:
    imported = importlib.import_module(module)
    if name.startswith("source:"):  # an attribute set at run time: the module's code must still use it
        assert name.removeprefix("source:") in inspect.getsource(imported), f"{module} no longer uses it ({use})"
        return
    target = imported
    for part in name.split("."):
        if part == "_orig_mod":  # an instance attribute of OptimizedModule, set in its __init__
            assert "self._orig_mod" in inspect.getsource(target), use
            return
        target = getattr(target, part)
    assert target is not None, use
