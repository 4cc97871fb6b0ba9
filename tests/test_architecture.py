"""The package's shape: three layers that only import downwards, lazy public names, a light `import hf_gradinit`."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hf_gradinit"
HEAVY = ("datasets", "sacrebleu", "matplotlib", "pyarrow", "pandas", "jinja2")
# Layer of a module by its first package component below hf_gradinit; the method's modules sit at the top.
LAYERS = {"integrations": 3, "translation": 2, "vision": 2}


def _layer(module: str) -> tuple[int, str]:
    parts = module.split(".")[1:]
    part = parts[0] if len(parts) > 1 or (parts and parts[0] in LAYERS) else ""
    return LAYERS.get(part, 1), part


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    """The hf_gradinit modules `path` imports (relative imports resolved), at any depth of the file."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(target)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [name for name in found if name == "hf_gradinit" or name.startswith("hf_gradinit.")]


def test_modules_only_import_their_own_layer_or_lower_ones() -> None:
    reaching_up = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "__init__.py":
            continue  # the public surface: its imports are for type checkers only (the rest is lazy)
        source = _module_name(path)
        level, toolkit = _layer(source)
        for target in _imports(path):
            target_level, target_toolkit = _layer(target)
            sideways = level == target_level == 2 and toolkit != target_toolkit  # toolkits are independent
            if target_level > level or sideways:
                reaching_up.append(f"{source} imports {target}")
    assert not reaching_up


def test_the_layer_check_sees_relative_imports_inside_functions() -> None:
    fake = PACKAGE / "translation" / "_probe_for_test.py"
    fake.write_text("def f():\n    from ..integrations import trainer\n")
    try:
        assert _imports(fake) == ["hf_gradinit.integrations"]
    finally:
        fake.unlink()


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(completed.stdout.split())


def test_importing_the_package_loads_nothing_heavy() -> None:
    assert not _loaded_after("import hf_gradinit") & {*HEAVY, "torch", "transformers", "accelerate"}
    # The method itself needs torch and accelerate's batch utilities, nothing of the toolkits or the Hub layer.
    core = _loaded_after("from hf_gradinit import init_with_gradinit, GradInitConfig, GradInitResult, config_for_run")
    assert not core & {*HEAVY, "transformers"}
    assert {"torch", "accelerate"} <= core


@pytest.mark.parametrize("package", ["hf_gradinit", "hf_gradinit.translation", "hf_gradinit.vision"])
def test_public_names_resolve_and_match_what_type_checkers_see(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None
    tree = ast.parse(Path(module.__file__).read_text())
    checked = next(node for node in tree.body if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test))
    imported = {alias.name for node in ast.walk(checked) if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert imported == set(module.__all__)
    assert set(dir(module)) >= set(module.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018


def test_toolkit_names_once_exported_at_the_top_still_resolve_with_a_warning() -> None:
    import hf_gradinit
    from hf_gradinit.translation import post_ln_config

    with pytest.warns(FutureWarning, match="import it from hf_gradinit.translation"):
        assert hf_gradinit.post_ln_config is post_ln_config
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hf_gradinit.init_with_gradinit is importlib.import_module("hf_gradinit.core").init_with_gradinit
