"""IAM tests run the panel against the real OpenID provider (tests/oidc_fixture.py)."""

import threading
from datetime import UTC, datetime

import pytest

from app.tokens import services as vault
from tests.conftest import panel_for_test
from tests.oidc_fixture import build_iam_app, op_config, start_op, stop_op


@pytest.fixture
def iam_overrides() -> dict:
    """Settings overrides for the `app` of a test module (override this fixture to change them)."""
    return {}


@pytest.fixture
def app(settings_factory, migrated_sqlite, oidc_op, iam_overrides):
    yield from panel_for_test(build_iam_app(settings_factory, migrated_sqlite, oidc_op, **iam_overrides))


@pytest.fixture
def make_app(settings_factory, migrated_sqlite, oidc_op):
    """Build panels (their app contexts pushed, the last one current) against `op` (default: the
    session's provider) with settings overrides like build_iam_app's."""
    made = []

    def make(op=None, **overrides):
        application = build_iam_app(settings_factory, migrated_sqlite, op or oidc_op, **overrides)
        ctx = application.app_context()
        ctx.push()
        made.append(ctx)
        return application

    yield make
    from app.extensions import db as _db

    for ctx in reversed(made):
        _db.session.remove()
        _db.engine.dispose()
        ctx.pop()


@pytest.fixture
def make_op(tmp_path):
    """Start providers of the test's own, to pause (an outage) or restart (new signing key) without
    disturbing the session's; `make_op(port=op.port)` restarts on the same address. All stop at the end."""
    started = []

    def make(port: int = 0, **env: str):
        op = start_op(tmp_path, op_config(), extra_env=env, port=port)
        started.append(op)
        return op

    yield make
    for op in started:
        stop_op(op)


@pytest.fixture
def real_clock(clock):
    """The panel's clock at the real time (the provider stamps tokens with the real time)."""
    clock.set(datetime.now(UTC))
    return clock


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
