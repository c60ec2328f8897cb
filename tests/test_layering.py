"""Import arrows run down: evaluation, analysis, plots and the objectives never import train/."""

import ast
from pathlib import Path

import pytest

import neurossl

PACKAGE = Path(neurossl.__file__).parent
LOWER = ("objectives", "evaluate", "analysis", "plots", "runtime")


def imported_modules(source: str, package: str) -> set[str]:
    """Absolute names of the modules ``source`` (a module of ``package``) imports, at any depth,
    relative imports resolved."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names.update([module] + [f"{module}.{alias.name}" for alias in node.names])
    return names


def imports_train(source: str, package: str) -> bool:
    return any(name == "neurossl.train" or name.startswith("neurossl.train.")
               for name in imported_modules(source, package))


def module_imports_train(path: Path) -> bool:
    package = ".".join(("neurossl", *path.relative_to(PACKAGE).parent.parts))
    return imports_train(path.read_text(), package)


@pytest.mark.parametrize("folder", LOWER)
def test_lower_layers_do_not_import_train(folder):
    offenders = [str(p.relative_to(PACKAGE)) for p in sorted((PACKAGE / folder).rglob("*.py"))
                 if module_imports_train(p)]
    assert offenders == [], f"these modules import neurossl.train: {offenders}"


def test_the_walk_sees_absolute_relative_and_function_level_imports():
    cases = {"from neurossl.train.trainer import Trainer\n": True,
             "def f():\n    import neurossl.train.optim\n": True,
             "from ..train import checkpoint\n": True,
             "from .. import train\n": True,
             "from neurossl.runtime.schedules import linear\n": False,
             "from .style import set_theme\n": False}
    for source, expected in cases.items():
        assert imports_train(source, "neurossl.plots") is expected, source


def test_runtime_imports_nothing_else_of_neurossl():
    for path in sorted((PACKAGE / "runtime").glob("*.py")):
        names = imported_modules(path.read_text(), "neurossl.runtime")
        outside = sorted(n for n in names if n.startswith("neurossl.") and not n.startswith("neurossl.runtime"))
        assert outside == [], f"{path.name} imports {outside}"
