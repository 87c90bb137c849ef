"""Two servers started at once on an empty PostgreSQL database both come up (issue 16 item 4): the
migrations run once under the advisory lock, and the first-start administrator is created once."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
import requests
from sqlalchemy import func, select

from app.auth.models import User
from app.auth.services import INITIAL_ADMIN, ensure_admin
from app.extensions import db
from tests.conftest import PG_ADMIN
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]


def test_two_servers_on_an_empty_postgresql_database_both_start(tmp_path, pg_database_url):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PRODPANEL_INSTANCE", None)
    servers = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir(mode=0o700)
        (folder / "config.toml").write_text(f'database_url = "{pg_database_url}"\n')
        (folder / "config.toml").chmod(0o600)
        port = free_port()
        command = [sys.executable, "-m", "app.cli", "--instance", str(folder), "serve", "--port", str(port)]
        servers.append((subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                         cwd=ROOT, env=env), port))  # fmt: skip
    outputs = {port: [] for _, port in servers}
    readers = [threading.Thread(target=lambda p=proc, o=outputs[port]: o.extend(p.stdout), daemon=True)
               for proc, port in servers]  # fmt: skip
    for reader in readers:
        reader.start()
    try:
        for proc, port in servers:
            wait_until(lambda p=proc, o=outputs[port]: p.poll() is not None or any("serving on" in x for x in o),
                       timeout=120, message="both servers to start or end")  # fmt: skip
        for proc, port in servers:
            assert proc.poll() is None, "".join(outputs[port])
            assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        for proc, _ in servers:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=60) for proc, _ in servers]
        for reader, (proc, _) in zip(readers, servers, strict=True):
            reader.join(timeout=10)
            proc.stdout.close()
    assert codes == [0, 0], outputs
    text = "".join(line for lines in outputs.values() for line in lines)
    assert "Traceback" not in text and "UniqueViolation" not in text
    with psycopg.connect(pg_database_url.replace("postgresql+psycopg", "postgresql")) as conn:
        assert conn.execute("SELECT count(*) FROM \"user\" WHERE username = 'admin'").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    assert sum("created administrator 'admin'" in line for line in text.splitlines()) == 1


def test_ensure_admin_leaves_the_admin_another_server_is_creating(settings_factory, migrated_pg_url):
    """The race itself, made certain: this server's insert waits on the other's uncommitted admin and
    meets it once that commits."""
    from app import create_app

    app = create_app(settings_factory(database_url=migrated_pg_url))
    results: list = []

    def second_server() -> None:
        try:
            with app.app_context():
                results.append(ensure_admin())
                db.session.commit()
                db.session.remove()
        except BaseException as error:  # shown by the assertions below instead of a silent thread death
            results.append(error)

    def second_is_waiting(watch) -> bool:
        waiting = watch.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()[0]
        return bool(waiting) or not thread.is_alive()

    try:
        with app.app_context():
            assert ensure_admin() is not None  # the first server: flushed, not committed yet
            thread = threading.Thread(target=second_server)
            thread.start()
            database = migrated_pg_url.rsplit("/", 1)[1]
            # autocommit: inside one transaction pg_stat_activity keeps showing its first snapshot
            with psycopg.connect(PG_ADMIN.replace("dbname=test", f"dbname={database}"), autocommit=True) as watch:
                wait_until(lambda: second_is_waiting(watch), timeout=30,
                           message="the second insert to wait for the first")  # fmt: skip
            assert thread.is_alive(), f"the second server did not wait for the first: {results}"
            db.session.commit()
            thread.join(timeout=30)
            assert results == [None]
            assert db.session.scalar(select(func.count()).select_from(User).where(User.username == INITIAL_ADMIN)) == 1
            db.session.remove()
    finally:
        with app.app_context():
            db.engine.dispose()
