"""Flask extensions, created unbound; create_app() binds them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, has_request_context
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.pagination import SelectPagination
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import ColumnElement, Select, and_, func, or_
from sqlalchemy import select as sa_select
from sqlalchemy.orm import lazyload

from app.db import Base
from app.inputs import cursor_arg, page_number

if TYPE_CHECKING:
    from app.panda.client import PandaApi


COUNT_CAP = 10_000  # a listing counts its rows up to here only ("10 000+"): never over an unbounded set


def count_cap() -> int:
    """COUNT_CAP, read when a count is made (never copied at import): the one name tests lower."""
    return COUNT_CAP


def capped_text(count: int) -> str:
    """A count as pages show it: "10 000+" beyond the cap."""
    cap = count_cap()
    return f"{cap:,}+".replace(",", " ") if count > cap else str(count)


class CappedPagination(SelectPagination):
    """Flask-SQLAlchemy's pagination with the total counted up to COUNT_CAP + 1 rows only (a count over
    the whole audit log or PanDA log grows with it); past the cap, "Next" stays while pages are full."""

    def _query_count(self) -> int:
        return capped_count(self._query_args["select"], self._query_args["session"])

    @property
    def total_text(self) -> str:
        return capped_text(self.total or 0)

    @property
    def has_next(self) -> bool:
        capped = (self.total or 0) > count_cap() and len(self.items) == self.per_page
        return self.page < self.pages or capped

    @property
    def next_num(self) -> int | None:
        return self.page + 1 if self.has_next else None


def capped(select: Select) -> Select:
    """SQL: how many rows `select` returns, counted up to COUNT_CAP + 1 only: a statement of its own,
    or `.scalar_subquery()` for several counts in one statement (each then walks its own index range)."""
    return sa_select(func.count()).select_from(select.limit(count_cap() + 1).subquery())


def capped_count(select: Select, session: Any) -> int:
    """The rows of `select` counted up to COUNT_CAP + 1 only."""
    return session.execute(capped(select.options(lazyload("*")).order_by(None))).scalar() or 0


@dataclass(frozen=True)
class SeekPage:
    """One page of a list read by keyset (seek), not OFFSET: `before` / `after` are the ids to put in
    the URL for the page before and after it (None at either end); the total is capped."""

    items: list[Any]
    total: int
    before: int | None
    after: int | None

    @property
    def total_text(self) -> str:
        return capped_text(self.total)


def _beyond(keys: Sequence[ColumnElement], values: Sequence[Any], descending: bool) -> ColumnElement[bool]:
    """Rows strictly after `values` in the order of `keys` (lexicographic; the last key is unique), led
    by a range on the first key so that its index bounds the scan."""

    def strictly(key: ColumnElement, value: Any) -> ColumnElement[bool]:
        return key < value if descending else key > value

    def after(i: int) -> ColumnElement[bool]:
        if i == len(keys) - 1:
            return strictly(keys[i], values[i])
        return or_(strictly(keys[i], values[i]), and_(keys[i] == values[i], after(i + 1)))

    first = keys[0] <= values[0] if descending else keys[0] >= values[0]
    return and_(first, after(0)) if len(keys) > 1 else after(0)


def seek(
    select: Select,
    keys: Sequence[Any],
    *,
    per_page: int,
    descending: bool = True,
    after: int | None = None,
    before: int | None = None,
) -> tuple[list[Any], int | None, int | None]:
    """A page of `select` in the order of `keys` (columns of its entity, the last one its id), from the
    row whose id is `after` (the page after it) or `before` (the page before it): a range on an index
    whatever the depth, where OFFSET reads every row it skips. Its rows, and the ids to page before
    and after them (None at either end); nothing counted."""
    session = db.session
    cursor = after if after is not None else before
    forward = before is None or after is not None
    query = select.order_by(None).limit(per_page + 1)
    if cursor is not None:
        row = session.execute(sa_select(*keys).where(keys[-1] == cursor)).first()
        values: Sequence[Any] = tuple(row) if row is not None else (cursor,)
        if row is None:  # a row gone since (a launch of an edited bunch): its id alone places it
            keys = keys[-1:]
        query = query.where(_beyond(keys, values, descending if forward else not descending))
    order = [key.desc() if descending == forward else key.asc() for key in keys]
    items = list(session.scalars(query.order_by(*order)))
    more = len(items) > per_page
    items = items[:per_page]
    ids = [item.id for item in items]
    if forward:
        return items, ids[0] if cursor is not None and ids else None, ids[-1] if more else None
    items.reverse()
    ids.reverse()
    return items, ids[0] if more else None, ids[-1] if ids else None


def seek_paginate(
    select: Select,
    keys: Sequence[Any],
    *,
    per_page: int,
    descending: bool = True,
    cursors: tuple[int | None, int | None] | None = None,
) -> SeekPage:
    """`seek`'s page with its total (capped), from `cursors` (after, before), else the request's
    `after` and `before`: a cursor of the request that is not an id is a 400 with a message
    (app/inputs.py)."""
    after, before = cursors if cursors is not None else (cursor_arg("after"), cursor_arg("before"))
    items, previous, following = seek(select, keys, per_page=per_page, descending=descending, after=after, before=before)
    return SeekPage(items, capped_count(select, db.session), previous, following)


class PanelSQLAlchemy(SQLAlchemy):
    """`db.paginate` reads the page number within bounds (Flask-SQLAlchemy's own reading lets a huge
    number overflow the OFFSET in the database driver) and counts the rows up to COUNT_CAP only."""

    def paginate(self, select: Any, *, page: int | None = None, **kwargs: Any) -> Any:
        number = page_number() if page is None and has_request_context() else page
        per_page = kwargs.pop("per_page", None)
        error_out = kwargs.pop("error_out", True)
        return CappedPagination(select=select, session=self.session(), page=number, per_page=per_page,
                                error_out=error_out, **kwargs)  # fmt: skip


db = PanelSQLAlchemy(model_class=Base)
csrf = CSRFProtect()

# The models' base class. Flask-SQLAlchemy builds db.Model at run time (Base plus its bind and
# table-name helpers); type checkers see Base, which declares the same mapping.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model

PandaFactory = Callable[..., "PandaApi"]  # called as factory(interactive=bool)


class PandaClients:
    """The one way the panel gets a PanDA client (`PandaApi`): the app's factory, which
    create_app() installs (`app.panda.services.make_client`) and tests replace with a fake one."""

    key = "panda_clients"

    def init_app(self, app: Flask, factory: PandaFactory) -> None:
        app.extensions[self.key] = factory

    def __call__(self, *, interactive: bool = False) -> PandaApi:
        """A client for the current app; ``interactive``: a user waits for the answer (short
        timeouts, no retries). The caller closes it."""
        factory: PandaFactory = current_app.extensions[self.key]
        return factory(interactive=interactive)


panda_clients = PandaClients()
