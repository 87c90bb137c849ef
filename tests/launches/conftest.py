"""Launch test fixtures: the fake PanDA of the task tests and their definitions, and the owners'
grants for the schedule's token checks."""

import dataclasses
from datetime import timedelta

import pytest

from app.tokens import vault
from tests.tasks.conftest import fake_panda, sim_definition  # noqa: F401 (fixtures)


@pytest.fixture
def iam_app(app, settings_factory):
    """The panel pointed at a real PanDA URL (no sandbox tokens): users need grants in the vault."""
    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = dataclasses.replace(
        settings, panda=dataclasses.replace(settings.panda, url="http://127.0.0.1:1")
    )
    return app


def give_grant(db, user, ends_in: timedelta, clock):
    """A device-link grant of `user` whose refresh token ends `ends_in` from now."""
    row = vault.store_tokens(user, "device-link", {"refresh_token": "opaque-refresh"}, issuer="https://iam", client_id="c")
    row.refresh_token_expires_at = clock() + ends_in
    db.session.commit()
    return row
