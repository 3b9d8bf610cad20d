"""The package's shape: every name one module takes from another is in that module's
``__all__``, and no module grows past the size that says it mixes concerns."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "egress_offline"
MODULES = sorted(
    ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for path in PACKAGE.rglob("*.py")
    if path.name != "__main__.py"  # importing it runs the command
)


def _imports(module: str) -> list[tuple[str, str]]:
    """(module, name) of every ``from egress_offline... import name`` in ``module``."""
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("egress_offline"):
            found += [(node.module or "", alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("module", MODULES)
def test_every_imported_name_is_in_its_module_s_all(module: str) -> None:
    missing = []
    for source, name in _imports(module):
        home = importlib.import_module(source)
        try:  # a submodule is imported by its name, not listed
            importlib.import_module(f"{source}.{name}")
            continue
        except ModuleNotFoundError:
            pass
        if name not in getattr(home, "__all__", ()):
            missing.append(f"{source}.{name}")
    assert not missing, f"{module} imports names missing from their __all__: {missing}"


@pytest.mark.parametrize("module", MODULES)
def test_every_name_in_all_exists(module: str) -> None:
    loaded = importlib.import_module(module)
    for name in getattr(loaded, "__all__", ()):
        assert hasattr(loaded, name), f"{module}.__all__ lists {name}, which it lacks"


def test_no_module_passes_about_500_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > 500
    }
    assert not long, f"modules over 500 lines (split them by concern): {long}"


def test_the_hunt_s_predicate_is_spelled_out_once() -> None:
    """``disconnect_received`` (the query's action) is written in the hunt's definition
    and nowhere else in the code: the prefilter, the reduction and the labels are all
    compiled from it."""
    holders = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if any(
            "disconnect_received" in line and not line.lstrip().startswith(("#", '"""'))
            for line in _code_lines(path)
        )
    )
    assert holders == ["spec.py"]


def _code_lines(path: Path) -> list[str]:
    """The lines of ``path`` outside docstrings and comments."""
    tree = ast.parse(path.read_text())
    doc_lines: set[int] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            doc_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return [
        line
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if number not in doc_lines and not line.lstrip().startswith("#")
    ]
