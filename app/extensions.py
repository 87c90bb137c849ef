"""Flask extensions, created unbound; create_app() binds them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, has_request_context
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.pagination import SelectPagination
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.orm import lazyload

from app.db import Base
from app.inputs import page_number

if TYPE_CHECKING:
    from app.panda.client import PandaApi


COUNT_CAP = 10_000  # a listing counts its rows up to here only ("10 000+"): never over an unbounded set


def capped_text(count: int) -> str:
    """A count as pages show it: "10 000+" beyond the cap."""
    return f"{COUNT_CAP:,}+".replace(",", " ") if count > COUNT_CAP else str(count)


class CappedPagination(SelectPagination):
    """Flask-SQLAlchemy's pagination with the total counted up to COUNT_CAP + 1 rows only (a count over
    the whole audit log or PanDA log grows with it); past the cap, "Next" stays while pages are full."""

    def _query_count(self) -> int:
        select = self._query_args["select"]
        limited = select.options(lazyload("*")).order_by(None).limit(COUNT_CAP + 1).subquery()
        return self._query_args["session"].execute(sa_select(func.count()).select_from(limited)).scalar() or 0

    @property
    def total_text(self) -> str:
        return capped_text(self.total or 0)

    @property
    def has_next(self) -> bool:
        capped = (self.total or 0) > COUNT_CAP and len(self.items) == self.per_page
        return self.page < self.pages or capped

    @property
    def next_num(self) -> int | None:
        return self.page + 1 if self.has_next else None


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
