"""No import cycles inside app/: module-level imports form a graph without loops.

Only imports that run when a module is loaded count (function-level imports and `if TYPE_CHECKING:`
blocks do not); `from pkg import name` counts as importing `pkg.name` when that is a module.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_level_imports(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """The app modules a module imports while it loads."""
    found: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If):
            if not is_type_checking(node):
                pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(
                    package[: len(package) - node.level + 1] + ([node.module] if node.module else [])
                )
            else:
                base = node.module or ""
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base)
    return {m for m in found if m == "app" or m.startswith("app.")}


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted((ROOT / "app").rglob("*.py")):
        name = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = module_level_imports(tree, name, path.name == "__init__.py")
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_app_has_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles inside app/:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_domains_register_their_commands_without_importing_the_cli():
    importers = sorted(name for name, imports in import_graph().items() if "app.cli" in imports)
    assert importers == []


def test_the_check_finds_a_cycle():
    assert cycles({"app.a": {"app.b"}, "app.b": {"app.c"}, "app.c": {"app.a"}, "app.d": {"app.a"}}) == [
        ["app.a", "app.b", "app.c"]
    ]


def test_relative_and_guarded_imports_are_resolved():
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import errors\n"
        "from .results import TaskInfo\n"
        "if TYPE_CHECKING:\n"
        "    from app.config import Settings\n"
        "def later():\n"
        "    from app.tokens import services\n"
    )
    imports = module_level_imports(ast.parse(source), "app.panda.client", is_package=False)
    assert imports == {"app.panda.errors", "app.panda.results"}
