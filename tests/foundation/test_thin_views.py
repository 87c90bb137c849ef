"""Views are thin: every route handler parses input, calls one service and renders or redirects,
in 15 lines at most (its docstring not counted)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 15
ROUTE_DECORATORS = {"get", "post", "route", "put", "patch", "delete"}


def route_handlers(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
            isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr in ROUTE_DECORATORS
            for d in node.decorator_list
        ):
            yield node


def body_lines(node: ast.FunctionDef) -> int:
    body = node.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and len(body) > 1:
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1


def test_no_route_handler_is_long():
    long = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        if "simulator" in path.parts:  # a separate product with its own WSGI app
            continue
        for node in route_handlers(ast.parse(path.read_text(encoding="utf-8"))):
            if body_lines(node) > MAX_LINES:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({body_lines(node)} lines)")
    assert not long, "route handlers over 15 lines (move the logic into a service):\n" + "\n".join(long)


def test_the_check_counts_a_handler():
    source = '@bp.post("/x")\ndef x():\n    """Doc."""\n' + "    a = 1\n" * 16
    [handler] = route_handlers(ast.parse(source))
    assert body_lines(handler) == 16
