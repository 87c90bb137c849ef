"""Smoke test for a built `prodpanel` binary (stdlib only; run by packaging/build.sh).

    python packaging/smoke_test.py build/dist/prodpanel/prodpanel

Starts `prodpanel serve --port 0 --processes 2` on a fresh temporary instance folder, waits for
/healthz from both processes (the worker is the binary started again: `serve-worker`), checks
that templates, vendored static files, migrations and password hashing work inside the bundle by
logging in with the printed first-start admin credentials, then stops the server with SIGTERM and
requires a clean exit. Exits non-zero with a message on the first failure.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import json
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 90  # first start of a onedir build on 2 busy cores
STOP_TIMEOUT_S = 20
MANIFEST = Path(__file__).resolve().parents[1] / "static" / "vendor" / "MANIFEST.json"


class SmokeFailure(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


class Output:
    """Collects the child's stdout+stderr in a thread so that reading never blocks the test."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put(line)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        for line in self.lines:
            if match := regex.search(line):
                return match
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            self.lines.append(line)
            if match := regex.search(line):
                return match
        raise SmokeFailure(f"no line matching {pattern!r} within {timeout:.0f} s")

    def drain(self) -> str:
        while True:
            try:
                self.lines.append(self._queue.get_nowait())
            except queue.Empty:
                return "".join(self.lines)


def poll(url: str, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except (urllib.error.URLError, ConnectionError) as exc:
            last = str(exc)
        time.sleep(0.2)  # polling a server that is starting; not waiting for state in a test
    raise SmokeFailure(f"{url} did not answer within {timeout:.0f} s ({last})")


def run(binary: Path) -> None:
    check(binary.is_file(), f"{binary} does not exist (build first)")
    manifest = json.loads(MANIFEST.read_text())
    with tempfile.TemporaryDirectory(prefix="prodpanel-smoke-") as tmp:
        instance = Path(tmp) / "instance"
        proc = subprocess.Popen(
            [str(binary), "serve", "--host", "127.0.0.1", "--port", "0", "--processes", "2", "--instance", str(instance)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        out = Output(proc.stdout)
        try:
            base = out.wait_for(r"serving on (http://[\d.]+:\d+)/", START_TIMEOUT_S).group(1)
            # Standard output is a pipe here, so the password is in a file the log names.
            admin = out.wait_for(r"created administrator '([^']+)'; its password is in (\S+) ", 5)
            username, password = admin.group(1), Path(admin.group(2)).read_text().strip()
            print(f"smoke: serving on {base}")

            health = json.loads(poll(f"{base}/healthz", 30))
            print(f"smoke: /healthz -> {health}")
            check(health.get("database", {}).get("ok") is True, "healthz: database not reachable")
            check(health.get("migrations", {}).get("ok") is True, "healthz: migrations not at head")
            pids = {json.loads(poll(f"{base}/healthz", 30))["process"]["pid"]}
            deadline = time.monotonic() + START_TIMEOUT_S
            while len(pids) < 2 and time.monotonic() < deadline:  # each call a new connection: either process
                pids.add(json.loads(poll(f"{base}/healthz", 30))["process"]["pid"])
            check(len(pids) == 2, f"only the processes {pids} answered: the worker process did not start")
            print(f"smoke: two processes serve ({sorted(pids)})")

            jar = http.cookiejar.CookieJar()
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
            login_page = opener.open(f"{base}/login", timeout=10).read().decode()
            check(
                "vendor/bootstrap/bootstrap.min.css" in login_page,
                "login page does not load the vendored CSS",
            )

            for pkg in manifest["packages"].values():
                for entry in pkg["files"]:
                    body = opener.open(f"{base}/static/vendor/{entry['file']}", timeout=10).read()
                    check(
                        hashlib.sha256(body).hexdigest() == entry["sha256"],
                        f"{entry['file']} differs in bundle",
                    )
            print("smoke: templates and vendored static files served")

            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login_page)
            check(token is not None, "no CSRF token on the login page")
            form = urllib.parse.urlencode(
                {"csrf_token": token.group(1), "username": username, "password": password}
            ).encode()
            after = opener.open(f"{base}/login", data=form, timeout=30)
            check(after.status == 200, f"login answered {after.status}")
            check(
                urllib.parse.urlsplit(after.url).path != "/login",
                "logging in with the first-start admin credentials failed",
            )
            print(f"smoke: logged in as {username} -> {urllib.parse.urlsplit(after.url).path}")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = None
            log = out.drain()
        check(code == 0, f"exit status after SIGTERM: {code}\n--- output ---\n{log}")
        check("prodpanel stopped." in log, f"no clean-shutdown message\n--- output ---\n{log}")
        check(
            any(instance.glob("*.db")) or any(instance.glob("*.sqlite*")),
            "no SQLite database in the instance",
        )

        current = subprocess.run(
            [str(binary), "--instance", str(instance), "db", "current"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        check(
            current.returncode == 0 and "up to date" in current.stdout,
            f"db current: {current.stdout}{current.stderr}",
        )
        print(f"smoke: {current.stdout.strip()}")
    print("smoke: OK (clean exit on SIGTERM)")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        run(Path(sys.argv[1]))
    except SmokeFailure as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
