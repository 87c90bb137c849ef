import socket
import sys
import threading
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

from app import create_app
from app.paths import instance_dir, resource_root


def test_create_app_has_no_side_effects(settings_factory, monkeypatch):
    """No network, no threads, no queries: those start from `serve`, never from the factory."""
    settings = settings_factory()
    queries = []

    def count(conn, cursor, statement, *args):
        queries.append(statement)

    def no_network(self, address):
        raise AssertionError(f"create_app() opened a connection to {address!r}")

    event.listen(Engine, "before_cursor_execute", count)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    threads_before = set(threading.enumerate())
    files_before = set(settings.instance_dir.iterdir())
    try:
        app = create_app(settings)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert queries == []
    assert set(threading.enumerate()) - threads_before == set()
    assert set(settings.instance_dir.iterdir()) == files_before  # not even the SQLite file
    assert app.config["SETTINGS"] is settings


def test_instance_dir_resolution_order(tmp_path, monkeypatch):
    env = {"PRODPANEL_INSTANCE": str(tmp_path / "from-env")}
    assert instance_dir(tmp_path / "from-cli", env) == (tmp_path / "from-cli").resolve()
    assert instance_dir(None, env) == (tmp_path / "from-env").resolve()
    monkeypatch.chdir(tmp_path)
    assert instance_dir(None, {}) == tmp_path / "instance"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "dist" / "prodpanel"))
    assert instance_dir(None, {}) == (tmp_path / "dist").resolve() / "instance"
    assert instance_dir(None, env) == (tmp_path / "from-env").resolve()


def test_resource_root_from_source_and_frozen(tmp_path, monkeypatch):
    root = resource_root()
    assert (root / "templates" / "base.html").exists() and (root / "static").is_dir()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resource_root() == Path(tmp_path)
