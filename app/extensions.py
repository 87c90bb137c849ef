"""Flask extensions, created unbound; create_app() binds them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, has_request_context
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from app.db import Base
from app.inputs import page_number

if TYPE_CHECKING:
    from app.panda.client import PandaApi



class PanelSQLAlchemy(SQLAlchemy):
    """`db.paginate` reads the page number within bounds (Flask-SQLAlchemy's own reading lets a huge
    number overflow the OFFSET in the database driver)."""

    def paginate(self, select: Any, *, page: int | None = None, **kwargs: Any) -> Any:
        return super().paginate(select, page=page_number() if page is None and has_request_context() else page, **kwargs)


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
