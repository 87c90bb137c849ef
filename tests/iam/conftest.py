"""IAM tests run the panel against the real OpenID provider (tests/oidc_fixture.py)."""

import pytest

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
