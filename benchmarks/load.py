"""Benchmark: 20 and 50 concurrent logged-in users for 60 s each, while a bunch of 100 tasks launches
against the PanDA simulator.

The panel runs as `prodpanel serve` (waitress, its sandbox PanDA simulator) on a database seeded with
10 000 tasks (a copy of benchmarks/pages.py's seeded database, from its cache when there). Each
user is a thread with its own session, logged in through the login form before the clock starts
(a login's password hash costs ~50 ms of CPU by design), that browses: home page, task list, a
filtered task list, the search, a task page, its PanDA state, a bunch page and its progress
fragment, the chain list; without think time by default (`--think S`: a pause of S seconds on
average, random, between two pages, as a person reading them; the users then also start at random
within the first 2 S seconds). At the start of each run a manager
creates a bunch of 100 tasks through the task form, which the panel dispatches to the simulator
meanwhile. Prints throughput, p50/p95/p99 client-side latency, errors and the server process's CPU
per request per run, and appends them to benchmarks/RESULTS.md. The clients share the two cores
with the server, so the figures are pessimistic for the server.

Targets (issue 17): 50 users, 0 errors, p95 < 300 ms.

Usage: .venv/bin/python benchmarks/load.py [--users 20,50] [--seconds 60] [--tasks 10000] [--think 0,2]
       [--processes 1,2]   (`serve --processes N`: a server each; CPU counts its worker processes)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import random
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import pages  # noqa: E402 (after the path is set)
from benchmarks.common import PASSWORD, csrf_token, settings  # noqa: E402

PRODPANEL = [sys.executable, "-c", "from app.cli import main; main()"]


def _csrf(session: requests.Session, url: str) -> str:
    return csrf_token(session.get(url, timeout=30).text)


def login(base: str, username: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    token = _csrf(session, f"{base}/login")
    reply = session.post(f"{base}/login", data={"csrf_token": token, "username": username, "password": PASSWORD},
                         allow_redirects=False, timeout=30)  # fmt: skip
    assert reply.status_code == 302, reply.status_code
    return session


def prepare(instance: Path, tasks: int, cache: Path) -> dict[str, int]:
    """A copy of benchmarks/pages.py's seeded database (seeded now unless cached) in `instance`, the
    users, and the ids users open (tasks in PanDA and their bunches)."""
    from sqlalchemy import select

    from app import create_app
    from app.auth.services import create_local_user
    from app.extensions import db
    from app.tasks.models import Task

    seeded, _, _ = pages.seeded(cache, "sqlite", tasks, fresh=False)
    for name in ("prodpanel.sqlite3", "secret_key", "token_key"):
        shutil.copy2(seeded / name, instance / name)
    url = f"sqlite:///{instance / 'prodpanel.sqlite3'}"
    app = create_app(settings(instance, url))
    with app.app_context():
        for i in range(50):
            create_local_user(f"load{i}", PASSWORD, role="viewer")
        create_local_user("launcher", PASSWORD, role="manager")
        db.session.commit()
        ids = list(db.session.scalars(select(Task.id).where(Task.panda_task_id.is_not(None)).limit(500)))
        bunches = list(db.session.scalars(select(Task.bunch_id).where(Task.id.in_(ids)).distinct()))
        db.engine.dispose()
    return {"tasks": ids, "bunches": bunches}  # type: ignore[dict-item]


# What each user opens in turn (browse()), as the per-page figures name them.
PAGES = ("home", "task list", "task list by step", "search", "task page", "task's PanDA state", "bunch page",
         "bunch progress fragment", "chain list")  # fmt: skip


def browse(session: requests.Session, base: str, username: str, ids: dict, think: float, stop: float,
           out: list, errors: list) -> None:  # fmt: skip
    rng = random.Random(username)
    if think:  # people arrive one by one, not all on the home page at the same instant
        time.sleep(rng.uniform(0, 2 * think))
    while time.monotonic() < stop:
        task, bunch = rng.choice(ids["tasks"]), rng.choice(ids["bunches"])
        paths = ("/", "/tasks/", "/tasks/?step=SIM", f"/tasks/?q=PROD2025-{rng.randint(1, 999):03d}",
                 f"/tasks/{task}", f"/tasks/{task}/panda", f"/tasks/bunch/{bunch}",
                 f"/tasks/bunch/{bunch}/progress", "/chains/")  # fmt: skip
        for page, path in zip(PAGES, paths, strict=True):
            if time.monotonic() >= stop:
                return
            started = time.perf_counter()
            try:
                reply = session.get(base + path, timeout=60, allow_redirects=False)
                ok = reply.status_code == 200
            except requests.RequestException as exc:
                ok, reply = False, exc
            out.append((page, (time.perf_counter() - started) * 1000))
            if not ok:
                errors.append(f"{path}: {getattr(reply, 'status_code', reply)}")
            if think:
                time.sleep(min(rng.expovariate(1 / think), max(0.0, stop - time.monotonic())))


def launch_bunch(base: str) -> tuple[int, int | None]:
    """A manager creates a bunch of 100 tasks through the task form (the panel dispatches it); the
    reply's HTTP status and the bunch's id."""
    from tests.tasks.conftest import form_data, sim_definition

    session = login(base, "launcher")
    definition = dataclasses.replace(
        sim_definition(7, bunch_size=100, task_name=f"PROD2026-{random.randint(100, 999)}.SIM"), output_dataset=""
    )
    data = {"csrf_token": _csrf(session, f"{base}/tasks/new"), **form_data(definition, key=os.urandom(8).hex())}
    reply = session.post(f"{base}/tasks/create", data=data, allow_redirects=False, timeout=120)
    bunch = reply.headers.get("Location", "").rstrip("/").rsplit("/", 1)[-1]
    return reply.status_code, int(bunch) if bunch.isdigit() else None


def sent_to_panda(database: Path, bunch_id: int | None) -> int:
    """How many tasks of the bunch are in PanDA (read from the panel's SQLite database)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT count(panda_task_id) FROM task WHERE bunch_id = ?", (bunch_id,)).fetchone()[0]


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) process `pid` and its children (`serve`'s worker processes) have
    used so far (a child ended meanwhile is not counted: the workers live as long as the run)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) for child in children)


def run(base: str, ids: dict, users: int, seconds: float, think: float, server_pid: int, database: Path,
        processes: int) -> dict:
    timed: list[tuple[str, float]] = []
    errors: list[str] = []
    sessions = [login(base, f"load{i}") for i in range(users)]
    launched, bunch_id = launch_bunch(base)
    cpu_before = cpu_seconds(server_pid)
    stop = time.monotonic() + seconds
    threads = [threading.Thread(target=browse, args=(sessions[i], base, f"load{i}", ids, think, stop, timed, errors))
               for i in range(users)]  # fmt: skip
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    server_cpu = cpu_seconds(server_pid) - cpu_before
    if not timed:
        raise SystemExit(f"no request was answered: {errors[:3]}")
    latencies = sorted(ms for _, ms in timed)
    per_page = {page: sorted(ms for p, ms in timed if p == page) for page in PAGES}
    return {"users": users, "think": think, "processes": processes, "requests": len(latencies), "rps": len(latencies) / elapsed,
            "cpu_ms": 1000 * server_cpu / len(latencies), "p50": statistics.median(latencies),
            "p95": pct(latencies, 0.95), "p99": pct(latencies, 0.99), "errors": len(errors), "examples": errors[:3],
            "bunch_create_status": launched, "bunch_sent": sent_to_panda(database, bunch_id),
            "pages": {page: (pct(v, 0.5), pct(v, 0.95)) for page, v in per_page.items() if v}}  # fmt: skip


def pct(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def serve_and_run(args: argparse.Namespace, processes: int) -> list[dict]:
    """A fresh instance (the same seeded database), `serve --processes N` on it, a run per think
    time and number of users."""
    with tempfile.TemporaryDirectory() as folder:
        instance = Path(folder)
        instance.chmod(0o700)
        ids = prepare(instance, args.tasks, Path(args.cache))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PRODPANEL_INSTANCE", None)
        command = [*PRODPANEL, "--instance", str(instance), "serve", "--port", str(args.port),
                   "--processes", str(processes)]  # fmt: skip
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
        base = f"http://127.0.0.1:{args.port}"
        try:
            assert server.stdout is not None
            for line in server.stdout:  # the panel says when it listens
                if "serving on" in line:
                    break
            threading.Thread(target=server.stdout.read, daemon=True).start()  # keep the pipe drained
            wait_for_workers(base, processes)
            return [run(base, ids, int(n), args.seconds, float(think), server.pid, instance / "prodpanel.sqlite3",
                        processes)
                    for think in args.think.split(",") for n in args.users.split(",")]  # fmt: skip
        finally:
            server.terminate()
            server.wait(60)


def wait_for_workers(base: str, processes: int, timeout: float = 60) -> None:
    """Until every serving process answers (/healthz names the process that answered): the workers
    take a few seconds to import the panel after the main process listens."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < processes and time.monotonic() < deadline:
        with requests.Session() as session:
            session.trust_env = False
            seen.add(session.get(f"{base}/healthz", timeout=30).json()["process"]["pid"])
    if len(seen) < processes:
        raise SystemExit(f"only {len(seen)} of {processes} serving processes answered within {timeout:g} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="20,50")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--think", default="0", help="mean pause between two pages per user, seconds (a list: a run each)")
    parser.add_argument("--processes", default="1", help="`serve --processes N` (a list: a server each)")
    parser.add_argument("--port", type=int, default=5057)
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--cache", default="/var/tmp/prodpanel-bench", help="benchmarks/pages.py's seeded databases")
    args = parser.parse_args()
    results = []
    for processes in (int(n) for n in args.processes.split(",")):
        results += serve_and_run(args, processes)
    command = "python benchmarks/load.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [f"Command: `{command.strip()}` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC), {args.tasks:,} tasks, "
             "`prodpanel serve` (waitress) with its sandbox simulator; client-side latency in ms, clients on "
             "the same two cores.", "",
             "| processes | users | think (s) | requests | req/s | p50 | p95 | p99 | errors | server CPU ms/request | "
             "bunch of 100: created (HTTP), tasks in PanDA at the end |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        lines.append(f"| {r['processes']} | {r['users']} | {r['think']:g} | {r['requests']} | {r['rps']:.1f} | {r['p50']:.0f} | "
                     f"{r['p95']:.0f} | {r['p99']:.0f} | "
                     f"{r['errors']}{' ' + '; '.join(r['examples']) if r['examples'] else ''} | {r['cpu_ms']:.1f} | "
                     f"{r['bunch_create_status']}, {r['bunch_sent']} |")  # fmt: skip
    lines += ["", "Per page, p50 / p95 (ms), a column per run (processes, users, think time):", "",
              "| page | " + " | ".join(f"{r['processes']} proc., {r['users']} users, {r['think']:g} s" for r in results)
              + " |",
              "|---|" + "---|" * len(results)]  # fmt: skip
    for page in PAGES:
        cells = [f"{r['pages'][page][0]:.0f} / {r['pages'][page][1]:.0f}" if page in r["pages"] else "—" for r in results]
        lines.append(f"| {page} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    with Path(args.results).open("a") as fh:
        fh.write(f"\n## Load (benchmarks/load.py)\n\n{text}\n")


if __name__ == "__main__":
    main()
