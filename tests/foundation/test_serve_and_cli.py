"""`prodpanel serve` as a newcomer runs it: first start, admin credentials, login, health, SIGTERM."""

import os
import pty
import re
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from app.cli import main
from tests.helpers import free_port, run_cli, wait_until

ROOT = Path(__file__).resolve().parents[2]
PRODPANEL = [sys.executable, "-m", "app.cli"]


class Served:
    """`prodpanel serve` in a subprocess; its output goes to a pipe, or to a terminal (a pty)."""

    def __init__(self, instance: Path, port: int, *args: str, terminal: bool = False) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PRODPANEL_INSTANCE", None)
        master, output = pty.openpty() if terminal else (None, subprocess.PIPE)
        self.proc = subprocess.Popen(
            [*PRODPANEL, "--instance", str(instance), "serve", "--port", str(port), *args],
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env=env,
        )
        if master is None:
            self.stream = self.proc.stdout
        else:
            os.close(output)
            self.stream = os.fdopen(master, "r", errors="replace")
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.url = f"http://127.0.0.1:{port}"
        self.instance = instance
        wait_until(
            lambda: any("serving on" in line for line in self.lines) or self.proc.poll() is not None,
            timeout=60,
            message="prodpanel serve to start",
        )
        assert self.proc.poll() is None, "".join(self.lines)

    def _read(self) -> None:
        try:
            for line in self.stream:
                self.lines.append(line.replace("\r\n", "\n"))
        except OSError:  # EIO: the process closed its terminal
            pass

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=30)
        self.reader.join(timeout=10)
        self.stream.close()
        return code


def log_in(url: str, username: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{url}/login", timeout=10).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    response = session.post(
        f"{url}/login",
        timeout=10,
        allow_redirects=False,
        data={"csrf_token": token, "username": username, "password": password},
    )
    assert response.status_code == 302
    return session


def first_log_in(url: str, password: str, new_password: str = "the-admins-own-password") -> requests.Session:
    """The first-start administrator's first login: every page leads to the password change until
    a new password is chosen."""
    session = log_in(url, "admin", password)
    gate = session.get(f"{url}/audit/", timeout=10, allow_redirects=False)
    assert gate.status_code == 302 and gate.headers["Location"] == "/account/password"
    page = session.get(f"{url}/account/password", timeout=10).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    fields = {"csrf_token": token, "current": password, "new": new_password, "repeat": new_password}
    changed = session.post(f"{url}/account/password", data=fields, timeout=10, allow_redirects=False)
    assert changed.status_code == 302, changed.text[:500]
    return session


def open_to_others(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in [folder, *folder.rglob("*")]
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    }


def test_first_start_without_a_terminal_puts_the_admin_password_in_a_private_file(tmp_path):
    instance = tmp_path / "instance"
    password_file = instance / "initial_admin_password"
    served = Served(instance, free_port())
    try:
        wait_until(lambda: "initial_admin_password" in served.output, message="the log to name the file")
        assert f"its password is in {password_file} " in served.output
        password = password_file.read_text().strip()
        assert len(password) >= 12 and password not in served.output
        assert f"serving on {served.url}/" in served.output
        health = requests.get(f"{served.url}/healthz", timeout=10).json()
        assert health["database"]["ok"] and health["migrations"]["ok"]
        # Everything the panel created is its user's only: the database with its -wal and -shm, the
        # simulator's state, keys, the password file.
        names = {p.name for p in instance.iterdir()}
        assert {"prodpanel.sqlite3-wal", "prodpanel.sqlite3-shm", "panda-sim.sqlite3"} <= names
        assert open_to_others(instance) == {}
        with first_log_in(served.url, password) as session:
            assert not password_file.exists()  # the chosen password replaced it
            assert session.get(f"{served.url}/audit/", timeout=10, allow_redirects=False).status_code == 200
    finally:
        assert served.stop() == 0, served.output
    assert "prodpanel stopped." in served.output

    again = Served(instance, free_port())
    try:
        assert "password" not in again.output
    finally:
        assert again.stop(signal.SIGINT) == 0, again.output  # Ctrl-C
    assert "prodpanel stopped." in again.output

    changed = CliRunner().invoke(
        main, ["--instance", str(instance), "users", "passwd", "admin", "--password", "a-new-long-password"]
    )
    assert changed.exit_code == 0, changed.output


def test_first_start_on_a_terminal_shows_the_admin_password_there(tmp_path):
    instance = tmp_path / "instance"
    served = Served(instance, free_port(), terminal=True)
    try:
        wait_until(lambda: "shown only once" in served.output, message="the password on the terminal")
        password = re.search(r"created administrator 'admin' with password: (\S+)", served.output).group(1)
        assert not (instance / "initial_admin_password").exists()
        log_in(served.url, "admin", password).close()
    finally:
        assert served.stop() == 0, served.output


def test_start_warns_about_an_instance_folder_open_to_other_users(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir(mode=0o755)
    instance.chmod(0o755)
    (instance / "config.toml").write_text("[server]\nthreads = 2\n")
    (instance / "config.toml").chmod(0o644)
    (instance / "config.example.toml").write_text("# the example shipped with the panel: no secrets\n")
    (instance / "config.example.toml").chmod(0o644)
    served = Served(instance, free_port())
    try:
        assert f"{instance} was open to other users (mode 0755); restricted to 0700" in served.output
        assert f"{instance / 'config.toml'} is open to other users (mode 0644)" in served.output
        assert "config.example.toml is open" not in served.output
    finally:
        assert served.stop() == 0, served.output
    assert open_to_others(instance) == {"config.toml": "0o644", "config.example.toml": "0o644"}  # warned about, left as the owner set it


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[server]\nport = 'eighty'\n", "server.port: expected int, got str 'eighty'"),
        ("[server]\nthreads = 0\n", "server.threads: must be at least 1, got 0"),
        ('[panda]\ntransport = "carrier-pigeon"\n', 'panda.transport: must be one of "auto", "v1", "legacy"'),
    ],
)
def test_serve_refuses_bad_configuration_in_one_line(tmp_path, toml, message):
    instance = tmp_path / "instance"
    instance.mkdir(mode=0o700)
    (instance / "config.toml").write_text(toml)
    result = subprocess.run(
        [*PRODPANEL, "--instance", str(instance), "serve"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode != 0
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: configuration error: {message}")
    assert not (instance / "prodpanel.sqlite3").exists()


def test_users_commands(tmp_path):
    from click.testing import CliRunner

    runner = CliRunner()
    instance = str(tmp_path / "inst")
    assert runner.invoke(main, ["--instance", instance, "db", "upgrade"]).exit_code == 0
    result = runner.invoke(
        main,
        [
            "--instance",
            instance,
            "users",
            "add",
            "nina",
            "--role",
            "manager",
            "--name",
            "Nina M",
            "--password",
            "long-enough-pw",
        ],
    )
    assert result.exit_code == 0, result.output
    duplicate = runner.invoke(
        main, ["--instance", instance, "users", "add", "nina", "--password", "long-enough-pw"]
    )
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    short = runner.invoke(main, ["--instance", instance, "users", "add", "olga", "--password", "short"])
    assert short.exit_code != 0 and "at least 10 characters" in short.output
    listing = runner.invoke(main, ["--instance", instance, "users", "list"]).output
    assert re.search(r"nina\s+manager\s+yes\s+local\s+Nina M", listing)
    assert (
        runner.invoke(
            main, ["--instance", instance, "users", "passwd", "nina", "--password", "another-long-pw"]
        ).exit_code
        == 0
    )
    assert runner.invoke(main, ["--instance", instance, "users", "disable", "nina"]).exit_code == 0
    assert re.search(
        r"nina\s+manager\s+no", runner.invoke(main, ["--instance", instance, "users", "list"]).output
    )
    current = runner.invoke(main, ["--instance", instance, "db", "current"]).output
    assert "up to date" in current
    assert "0001_foundation" in runner.invoke(main, ["--instance", instance, "db", "history"]).output


def test_users_disable_ends_open_sessions(app, db, client, login_as):
    from sqlalchemy import func, select

    from app.auth.sessions import WebSession

    user = login_as("manager")
    assert db.session.scalar(
        select(func.count()).select_from(WebSession).where(WebSession.user_id == user.id)
    )
    instance = str(app.config["SETTINGS"].instance_dir)
    result = run_cli("--instance", instance, "users", "disable", user.username)
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert not db.session.scalar(
        select(func.count()).select_from(WebSession).where(WebSession.user_id == user.id)
    )


def test_flask_routes_and_shell_work_through_prodpanel(tmp_path):
    instance = str(tmp_path / "inst")
    routes = run_cli("--instance", instance, "routes")
    assert routes.exit_code == 0, routes.output
    assert re.search(r"tasks\.create\s+POST\s+/tasks/create", routes.output)
    assert re.search(r"panda\.task_calls\s+GET\s+/panda/tasks/<int:task_id>/calls", routes.output)
    shell = run_cli("--instance", instance, "shell", input="print('instance:', app.instance_path)\n")
    assert shell.exit_code == 0, shell.output
    assert f"instance: {(tmp_path / 'inst').resolve()}" in shell.output


def test_commands_work_on_the_chosen_instance(tmp_path):
    instance = str(tmp_path / "inst")
    assert run_cli("--instance", instance, "db", "upgrade").exit_code == 0
    assert "up to date" in run_cli("--instance", instance, "db", "current").output
    missing = run_cli("--instance", str(tmp_path / "other"), "db", "current").output
    assert "(empty)" in missing
