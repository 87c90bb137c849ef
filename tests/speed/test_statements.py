"""Every page runs the same number of SQL statements whatever the size of the data: each GET route
of the app is requested on a world with bunches of 5 tasks and chains of 2 steps, and on one with
bunches of 50 and chains of 4 (tests/speed/world.py), and the counts must be equal."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, g
from sqlalchemy import event

from app import create_app
from app.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.helpers import post_form
from tests.speed import world

# Routes that leave the panel (to SPD-IAM) or serve files, not pages.
NOT_PAGES = {"static", "iam.login", "iam.callback", "iam.end_session"}


def _arguments(w: world.World) -> dict[str, object]:
    """The value of each URL argument, by name: every argument of a GET route must be here."""
    return {"task_id": w.task_id, "bunch_id": w.bunch_id, "chain_id": w.chain_id, "bulk_id": w.bulk_id,
            "request_id": w.request_id, "name": "kill", "fmt": "json", "kind": "bunch", "item_id": w.bunch_id,
            "launch_id": w.launch_id}  # fmt: skip


def page_urls(app: Flask, w: world.World) -> dict[str, str]:
    """endpoint -> URL of every GET route (with the world's ids)."""
    values = _arguments(w)
    urls = {}
    with app.test_request_context():
        from flask import url_for

        for rule in app.url_map.iter_rules():
            if "GET" not in (rule.methods or ()) or rule.endpoint in NOT_PAGES:
                continue
            missing = rule.arguments - values.keys()
            assert not missing, f"{rule.rule}: give the statement-count test a value for {missing}"
            urls[rule.endpoint] = url_for(rule.endpoint, **{a: values[a] for a in rule.arguments})
    return urls


def variants(w: world.World) -> dict[str, str]:
    """Pages that some query arguments make different (a label -> URL)."""
    return {
        "tasks.clone task": f"/tasks/clone?task={w.task_id}",
        "tasks.clone bunch": f"/tasks/clone?bunch={w.bunch_id}",
        "tasks.new after": f"/tasks/new?step=RECO&after={w.bunch_id}",
        "tasks.edit not sent": f"/tasks/bunch/{w.clone_id}/edit",
        "tasks.bunch not sent": f"/tasks/bunch/{w.clone_id}",
        "tasks.index filtered": "/tasks/?q=SIM&step=SIM&launch=submitted&sort=name&order=asc",
        "tasks.panda_states bunch": f"/tasks/panda?bunch={w.bunch_id}",
        "tasks.panda_states ids": f"/tasks/panda?ids={w.task_id},{w.task_id + 2}",
        "panda.calls filtered": f"/panda/calls?method=getTaskStatus&task_id={1000}",
        "audit.index filtered": "/audit/?action=task&outcome=ok",
        "statistics.progress chain": f"/statistics/progress/chain/{w.chain_id}",
        "statistics.progress request": f"/statistics/progress/request/{w.request_id}",
    }


@contextmanager
def counting(engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def measure(settings_factory, migrated_sqlite, tmp_path, name: str, tasks: int, steps: int):
    """(status, statements) of every page on a world of this size."""
    folder = tmp_path / name
    folder.mkdir(mode=0o700)
    settings = settings_factory(instance_dir=folder, **world.settings_changes(folder))
    shutil.copy(migrated_sqlite, folder / "prodpanel.sqlite3")
    app = create_app(settings)
    app.config["TESTING"] = True
    with app.app_context():
        from app.auth.services import create_local_user

        admin = create_local_user("admin", TEST_PASSWORD, role="admin")
        db.session.commit()
        w = world.build(admin, tasks, steps)
        client = app.test_client()
        g.pop("csrf_token", None)
        assert post_form(client, "/login", {"username": "admin", "password": TEST_PASSWORD}).status_code == 302
        results = {}
        for endpoint, url in (page_urls(app, w) | variants(w)).items():
            client.get(url)  # the first request may fill caches and touch the session
            db.session.remove()
            with counting(db.engine) as statements:
                response = client.get(url)
            db.session.remove()
            results[endpoint] = (response.status_code, len(statements), url)
        db.session.remove()
        db.engine.dispose()
    return results


def test_every_page_runs_as_many_statements_at_both_sizes(settings_factory, migrated_sqlite, tmp_path, clock):
    small = measure(settings_factory, migrated_sqlite, tmp_path, "small", tasks=5, steps=2)
    large = measure(settings_factory, migrated_sqlite, tmp_path, "large", tasks=50, steps=4)
    assert small.keys() == large.keys()
    report = {
        endpoint: (small[endpoint][:2], large[endpoint][:2], small[endpoint][2])
        for endpoint in small
        if small[endpoint][:2] != large[endpoint][:2]
    }
    assert not report, "pages whose (status, statements) depend on the data's size:\n" + "\n".join(
        f"  {endpoint} {url}: {a} vs {b}" for endpoint, (a, b, url) in sorted(report.items())
    )
    assert all(status != 500 for status, _, _ in small.values()), {e: r for e, r in small.items() if r[0] == 500}
    assert sum(1 for status, _, _ in small.values() if status == 200) >= 20  # the pages did render

