"""IAM tests run the panel against the real OpenID provider (tests/oidc_fixture.py)."""

import threading

import pytest

from app.tokens import services as vault
from tests.oidc_fixture import build_iam_app


@pytest.fixture
def iam_overrides() -> dict:
    """Settings overrides for the `app` of a test module (override this fixture to change them)."""
    return {}


@pytest.fixture
def app(settings_factory, migrated_sqlite, oidc_op, iam_overrides):
    from app.extensions import db as _db

    application = build_iam_app(settings_factory, migrated_sqlite, oidc_op, **iam_overrides)
    with application.app_context():
        yield application
        _db.session.remove()
        _db.engine.dispose()


def token_for_in_two_threads(app, user_id: int) -> list[str]:
    """`vault.token_for(user_id)` from two threads released at once (as two requests or processes
    would call it); fails if either raised, returns both tokens."""
    barrier = threading.Barrier(2)
    results, errors = [], []

    def worker():
        with app.app_context():
            barrier.wait(timeout=10)
            try:
                results.append(vault.token_for(user_id))
            except Exception as exc:  # reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    return results
