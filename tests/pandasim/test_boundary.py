"""`pandasim` is a product of its own: it imports nothing from the panel (`app`); the panel may import it."""

from __future__ import annotations

import ast
from pathlib import Path

import pandasim

PACKAGE = Path(pandasim.__file__).parent


def imported_modules(source: str) -> set[str]:
    """Absolute module names a Python source imports (relative imports stay inside the package)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def panel_imports(source: str) -> set[str]:
    return {name for name in imported_modules(source) if name == "app" or name.startswith("app.")}


def test_pandasim_imports_nothing_from_app():
    offenders = {
        str(path.relative_to(PACKAGE.parent)): sorted(panel_imports(path.read_text(encoding="utf-8")))
        for path in sorted(PACKAGE.rglob("*.py"))
    }
    assert len(offenders) > 10, "the package's modules were not found"
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_check_sees_every_form_of_import():
    source = "import app\nimport app.config as c\nfrom app.panda import services\ndef f():\n    from app import x\n"
    assert panel_imports(source) == {"app", "app.config", "app.panda"}
    assert panel_imports("from . import app\nimport application\nfrom .app import SimApp\n") == set()
