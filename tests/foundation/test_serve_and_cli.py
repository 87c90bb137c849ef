"""`prodpanel serve` as a newcomer runs it: first start, admin credentials, login, health, SIGTERM."""

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import requests

from app.cli import main
from tests.helpers import free_port, run_cli, wait_until

ROOT = Path(__file__).resolve().parents[2]
PRODPANEL = [sys.executable, "-m", "app.cli"]


class Served:
    def __init__(self, instance: Path, port: int) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PRODPANEL_INSTANCE", None)
        self.proc = subprocess.Popen(
            [*PRODPANEL, "--instance", str(instance), "serve", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: any("serving on" in line for line in self.lines) or self.proc.poll() is not None,
            timeout=60,
            message="prodpanel serve to start",
        )
        assert self.proc.poll() is None, "".join(self.lines)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=30)
        self.reader.join(timeout=10)
        self.proc.stdout.close()
        return code


def test_first_start_prints_credentials_once_and_they_log_in(tmp_path):
    instance = tmp_path / "instance"
    served = Served(instance, free_port())
    try:
        output = "".join(served.lines)
        match = re.search(r"created administrator 'admin' with password: (\S+)", output)
        assert match, output
        assert f"serving on {served.url}/" in output
        health = requests.get(f"{served.url}/healthz", timeout=10).json()
        assert health["database"]["ok"] and health["migrations"]["ok"]
        session = requests.Session()
        served.session = session
        page = session.get(f"{served.url}/login", timeout=10).text
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        response = session.post(
            f"{served.url}/login",
            timeout=10,
            allow_redirects=False,
            data={"csrf_token": token, "username": "admin", "password": match.group(1)},
        )
        assert response.status_code == 302
        assert session.get(f"{served.url}/audit/", timeout=10).status_code == 200
    finally:
        if hasattr(served, "session"):
            served.session.close()
        assert served.stop() == 0, "".join(served.lines)
    assert "prodpanel stopped." in "".join(served.lines)

    again = Served(instance, free_port())
    try:
        assert "password" not in "".join(again.lines)
    finally:
        assert again.stop(signal.SIGINT) == 0, "".join(again.lines)  # Ctrl-C
    assert "prodpanel stopped." in "".join(again.lines)


def test_serve_refuses_bad_configuration(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.toml").write_text("[server]\nport = 'eighty'\n")
    result = subprocess.run(
        [*PRODPANEL, "--instance", str(instance), "serve"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode != 0
    assert "server.port: expected int, got str" in result.stderr


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
