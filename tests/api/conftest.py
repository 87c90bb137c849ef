"""API test helpers: a personal token for a user of a role, and a client that sends it."""

from __future__ import annotations

import pytest

from app.api import tokens
from tests.tasks.conftest import fake_panda, sim_definition  # noqa: F401 (fixtures)


class Api:
    """The test client with `Authorization: Bearer <token>` on every call."""

    def __init__(self, client, token: str) -> None:
        self.client, self.token = client, token

    def _headers(self, headers: dict | None) -> dict:
        return {"Authorization": f"Bearer {self.token}", **(headers or {})}

    def get(self, url: str, **kwargs):
        return self.client.get(url, headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    def post(self, url: str, json=None, **kwargs):
        return self.client.post(url, json=json, headers=self._headers(kwargs.pop("headers", None)), **kwargs)


@pytest.fixture
def make_token(db, make_user):
    """make_token(role, scope) -> (user, token): a user of `role` with a new personal token."""

    def make(role: str = "manager", scope: str = "write", user=None, days: int = 30):
        user = user or make_user(role)
        created = tokens.create_token(user, f"{role}-{scope}", scope, days)
        db.session.commit()
        return user, created.secret

    return make


@pytest.fixture
def api(client, make_token):
    """api(role="manager", scope="write") -> an Api client acting as a new user of that role."""

    def make(role: str = "manager", scope: str = "write") -> Api:
        _, secret = make_token(role, scope)
        return Api(client, secret)

    return make
