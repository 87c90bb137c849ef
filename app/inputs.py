"""Bounds on what a request may carry, applied where it is parsed, so that hostile input gets a 4xx
or a message instead of an exception deep in the database driver or the parser:

- numbers that reach the database fit its 64-bit integers (a larger id in a path matches no route);
- page numbers stay where an OFFSET can be computed;
- search text has a length the LIKE matcher handles;
- JSON/YAML documents have a size and a nesting depth the parser and everything after it handle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter, Map

MAX_ID = 2**63 - 1  # SQLite INTEGER and PostgreSQL BIGINT
MAX_PAGE = 1_000_000  # beyond any listing; keeps OFFSET far inside 64 bits
MAX_SEARCH_CHARS = 500
MAX_DOCUMENT_CHARS = 2_000_000
MAX_DEPTH = 32  # a task definition or manifest nests a few levels; 32 is generous


class BadInput(BadRequest):
    """A 400 whose description says what is wrong with a query parameter, for the person who sent it:
    the HTML error page shows it, as the API's problem document does."""


class IdConverter(IntegerConverter):
    """`<int:…>` in every route: a number the database can hold; a larger one matches no route (404)."""

    def __init__(
        self, map: Map, fixed_digits: int = 0, min: int | None = None, max: int | None = MAX_ID, signed: bool = False
    ) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def db_int(value: str) -> int:
    """`type=` for request.args.get / request.form.get: an int the database can hold (ValueError
    otherwise, so that the lookup falls back to its default)."""
    if len(value.strip()) > len(str(MAX_ID)) + 1:
        raise ValueError("number too large")
    number = int(value)
    if not -MAX_ID <= number <= MAX_ID:
        raise ValueError("number too large")
    return number


def as_id(text: str | None) -> int | None:
    """The id (a whole number >= 0 the database can hold) written in `text`, or None.

    Not `str.isdigit()` + int(): isdigit() accepts digits int() refuses ('²') and any length."""
    text = (text or "").strip()
    if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_ID)):
        return None
    number = int(text)
    return number if number <= MAX_ID else None


def id_list(text: str) -> list[int]:
    """Comma-separated ids; parts that are not such a number are left out."""
    ids = []
    for part in text.split(","):
        try:
            ids.append(db_int(part))
        except ValueError:
            continue
    return ids


def page_number() -> int:
    """The `page` query parameter: 1 when absent or not a number; 400 when out of range."""
    raw = request.args.get("page", "")
    try:
        page = int(raw)
    except ValueError:  # also a number of thousands of digits
        return 1
    if page > MAX_PAGE:
        raise BadInput(f"page numbers go up to {MAX_PAGE}")
    return max(page, 1)


def cursor_arg(name: str) -> int | None:
    """A keyset cursor in the query string (`after`, `before`: a whole number >= 0 the database can
    hold): None when absent or empty; 400 with a message when it is anything else."""
    raw = request.args.get(name, "")
    if raw == "":
        return None
    number = as_id(raw)
    if number is None:
        raise BadInput(f"{name} must be a whole number from 0 to {MAX_ID}")
    return number


def too_long(text: str | None, limit: int = MAX_SEARCH_CHARS) -> str | None:
    """What is wrong with search text longer than `limit`, or None."""
    if text is not None and len(text) > limit:
        return f"at most {limit} characters (got {len(text)})"
    return None


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """ValueError when lists/dicts nest deeper than `limit` (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            raise ValueError(f"nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)


def parse_document(parse: Callable[[Any], Any], text: str | bytes) -> Any:
    """`parse(text)` for a document a user sent, bounded in size and nesting (ValueError otherwise)."""
    if len(text) > MAX_DOCUMENT_CHARS:
        raise ValueError(f"larger than {MAX_DOCUMENT_CHARS} characters")
    try:
        value = parse(text)
    except RecursionError:  # the parser's own recursion: deeper than any limit below
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    check_depth(value)
    return value
