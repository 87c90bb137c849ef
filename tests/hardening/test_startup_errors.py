"""Start-up failures are one line and exit code 2, never a traceback, with the data untouched (issue 16
item 3); `--debug` or PRODPANEL_DEBUG=1 shows the traceback. Each case runs the real command in a
subprocess."""

import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import load_settings
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


def prodpanel(instance: Path, *args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()):
    environment = {**os.environ, **(env or {})}
    environment.pop("PRODPANEL_INSTANCE", None)
    return subprocess.run(
        [*prefix, sys.executable, "-m", "app.cli", "--instance", str(instance), *args],
        capture_output=True, text=True, cwd=ROOT, env=environment, timeout=120,
    )  # fmt: skip


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every path under `folder` with its mode and content hash: what 'untouched' compares."""
    return {
        str(p.relative_to(folder)): (p.lstat().st_mode, hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "")
        for p in sorted(folder.rglob("*"))
    }


def refused(result, *expected: str) -> str:
    """The command ended with exit code 2 and one line naming the problem."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    others = [line for line in lines if "open to other users" not in line and line not in errors]
    assert len(errors) == 1 and not others, result.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)  # no warning about its mode in the output


@pytest.fixture
def instance(tmp_path, migrated_sqlite) -> Path:
    """An instance folder with its keys and a database at head."""
    folder = tmp_path / "instance"
    folder.mkdir(mode=0o700)
    load_settings(folder, env={})  # generates secret_key and token_key, as a first start does
    shutil.copy(migrated_sqlite, folder / "prodpanel.sqlite3")
    return folder


def test_a_corrupt_sqlite_file(instance):
    (instance / "prodpanel.sqlite3").write_bytes(b"not a database, but a photo of one " * 300)
    before = snapshot(instance)
    refused(prodpanel(instance, "serve", "--port", "0"), f"database sqlite:///{instance}/prodpanel.sqlite3: file is not a database")
    assert snapshot(instance) == before


def test_a_truncated_sqlite_file(instance):
    database = instance / "prodpanel.sqlite3"
    database.write_bytes(database.read_bytes()[: database.stat().st_size // 2])
    before = snapshot(instance)
    refused(prodpanel(instance, "serve", "--port", "0"), "prodpanel.sqlite3: database disk image is malformed")
    assert snapshot(instance) == before


def test_the_traceback_with_debug(instance):
    (instance / "prodpanel.sqlite3").write_bytes(b"garbage" * 1000)
    for result in (
        prodpanel(instance, "--debug", "serve", "--port", "0"),
        prodpanel(instance, "serve", "--port", "0", env={"PRODPANEL_DEBUG": "1"}),
    ):
        assert result.returncode != 0
        assert "Traceback" in result.stderr and "file is not a database" in result.stderr


def test_postgresql_unreachable(instance):
    port = free_port()
    write_private(instance / "config.toml", f'database_url = "postgresql://panel:s3cret@127.0.0.1:{port}/panel"\n')
    line = refused(prodpanel(instance, "serve", "--port", "0"), f"database postgresql+psycopg://panel:***@127.0.0.1:{port}/panel: ")
    assert "s3cret" not in line


def test_an_unsupported_database_url(instance):
    write_private(instance / "config.toml", 'database_url = "mysql://panel:s3cret@127.0.0.1/panel"\n')
    line = refused(prodpanel(instance, "serve", "--port", "0"),
                   "configuration error: database_url: must be a sqlite:/// or postgresql:// URL")  # fmt: skip
    assert "s3cret" not in line


@pytest.mark.parametrize("name", ["token_key", "secret_key", "config.toml"])
def test_a_key_or_the_config_being_a_folder(tmp_path, name):
    folder = tmp_path / "instance"
    folder.mkdir(mode=0o700)
    (folder / name).mkdir(mode=0o700)
    before = snapshot(folder)
    refused(prodpanel(folder, "serve", "--port", "0"), f"configuration error: {name}: {folder / name} is not a regular file")
    assert snapshot(folder) == before


def test_an_instance_path_under_a_regular_file(tmp_path):
    (tmp_path / "file").write_text("a file, not a folder\n")
    refused(prodpanel(tmp_path / "file" / "instance", "serve"), f"instance folder: {tmp_path / 'file' / 'instance'}: Not a directory")
    assert (tmp_path / "file").read_text() == "a file, not a folder\n"


def test_an_immutable_instance_folder(instance):
    before = snapshot(instance)
    subprocess.run(["chattr", "+i", str(instance)], check=True)  # needs root, as CI has
    try:
        refused(prodpanel(instance, "serve", "--port", "0"), f"instance folder: {instance}: Operation not permitted")
    finally:
        subprocess.run(["chattr", "-i", str(instance)], check=True)
    assert snapshot(instance) == before


def test_an_instance_folder_the_panel_may_not_write(instance):
    before = snapshot(instance)
    if os.geteuid() == 0:  # root writes anywhere: run without the capabilities that allow it
        os.chown(instance, 65534, 65534)
        instance.chmod(0o755)  # readable, not writable: the usual case of a folder set up by someone else
        prefix = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--")
        result = prodpanel(instance, "serve", "--port", "0", prefix=prefix)
        os.chown(instance, 0, 0)
        instance.chmod(0o700)
        refused(result, f"instance folder: {instance}: Operation not permitted")
        assert snapshot(instance) == before
    else:  # a folder to be made where this user may not write
        refused(prodpanel(Path("/prodpanel-test-instance"), "serve"), "instance folder: /prodpanel-test-instance: Permission denied")


def test_the_port_already_in_use(tmp_path):
    folder = tmp_path / "instance"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused(prodpanel(folder, "serve", "--port", str(port)), f"cannot listen on 127.0.0.1:{port}: ", "in use")
    assert not (folder / "prodpanel.sqlite3").exists()  # refused before the database was created


def test_a_database_revision_unknown_to_the_code(instance):
    with sqlite3.connect(instance / "prodpanel.sqlite3") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    conn.close()
    before = snapshot(instance)
    message = "the database is at revision 0099_from_the_future, which this version of prodpanel does not know"
    refused(prodpanel(instance, "serve", "--port", "0"), message)
    refused(prodpanel(instance, "db", "upgrade"), message)
    assert snapshot(instance) == before
