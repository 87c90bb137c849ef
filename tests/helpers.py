"""Small helpers shared by the tests."""

import contextvars
import re
import socket
import time
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner, Result

_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, message: str = ""
) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {message or predicate}")
        time.sleep(interval)  # polling interval, not a wait for a state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def csrf_token(client, url: str = "/login") -> str:
    """The CSRF token of the client's session, read from a page's <meta name="csrf-token">."""
    html = client.get(url).get_data(as_text=True)
    match = _CSRF_META.search(html)
    assert match, f"no csrf-token meta tag on {url}"
    return match.group(1)


def post_form(client, url: str, data: dict | None = None, token_page: str = "/login", **kwargs):
    """POST a form with a valid CSRF token, as a browser would."""
    payload = {"csrf_token": csrf_token(client, token_page), **(data or {})}
    return client.post(url, data=payload, **kwargs)


def run_cli(*args: str, input: str | None = None) -> Result:
    """Run `prodpanel <args>` as a separate command would: with its own app, outside the test's app
    context (a fresh context holds no current app)."""
    from app.cli import main

    return contextvars.Context().run(CliRunner().invoke, main, list(args), input=input)


def run_job(name: str) -> None:
    """Run background job `name` once in this thread, as `serve`'s scheduler runs it (its own app
    context and session); the tests have no scheduler running."""
    from flask import current_app

    from app.jobs import JOBS
    from app.scheduler import Scheduler

    Scheduler(current_app._get_current_object(), JOBS).run_now(name)


def settle_launches(timeout: float = 60.0) -> bool:
    """Run the dispatch and reconcile jobs, as the scheduler would, until a run changes no launch row
    and none is being sent (what a background dispatch after a request would have done; under the e2e
    live server the scheduler's own dispatch may hold a launch in "sending" meanwhile, which this
    process's runs leave alone); False when `timeout` passed first."""
    from flask import current_app
    from sqlalchemy import select

    from app.extensions import db
    from app.launches.models import Launch

    def rows() -> list[tuple[Any, ...]]:
        with current_app.app_context():  # a session of its own: the caller's may hold an old snapshot
            try:
                return [tuple(r) for r in db.session.execute(select(Launch.id, Launch.status, Launch.error))]
            finally:
                db.session.remove()

    deadline = time.monotonic() + timeout
    before = rows()
    while time.monotonic() < deadline:
        run_job("dispatch")
        run_job("reconcile")
        after = rows()
        if after == before and all(status != "sending" for _, status, _ in after):
            return True
        before = after
    return False


def bunch_counts(bunch_id: int) -> dict[str, int]:
    """How many of the bunch's launches are in each status, read anew (after `settle_launches`)."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.launches.models import Launch
    from app.tasks.models import Task

    db.session.expire_all()
    rows = db.session.execute(
        select(Launch.status, func.count())
        .join(Task, Launch.task_id == Task.id)
        .where(Task.bunch_id == bunch_id)
        .group_by(Launch.status)
    )
    return {str(status): count for status, count in rows}
