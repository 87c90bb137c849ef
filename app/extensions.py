"""Flask extensions, created unbound; create_app() binds them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from app.db import Base

if TYPE_CHECKING:
    from app.panda.client import PandaApi

db = SQLAlchemy(model_class=Base)
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
