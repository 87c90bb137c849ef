"""Benchmark: every page of the panel at 1 000, 100 000 and 1 000 000 tasks (SQLite) and at 100 000 on
PostgreSQL, in one run.

Seeding (``seed``): bulk inserts (benchmarks/seed_tasks.py, then INSERT … SELECT for launches, status
changes, PanDA-log rows, audit events and production requests), then the measured pages' own rows
through the app's services (tests/speed/world.py: a chain of two bunches of 200 with children, a
clone, commands, a bulk action). Each size is its own database, kept in --cache and reused while the
size, the schema head and the seeding (SEED_VERSION) match: a second run measures at once.

Measuring: a separate worker process (its memory is the server's, not the seeder's) logs in as an
admin and requests every GET route the statement-count test knows (tests/speed/test_statements.py:
the same URL arguments and filtered variants) through the WSGI app in-process, timing the server
time and the CPU time of each request after three warm-up requests. It prints p50/p95 (ms) per page
and size, the ratio of each p50 to the same page at the smallest size and to /healthz, the CPU ms per
request, PostgreSQL's p50 against SQLite's at the same size, the worker's peak RSS, and which targets
are met.

Targets (issue 17): every page at 1M within 3x of itself at 1k; p50 < 50 ms at 1M; PostgreSQL within
1.5x of SQLite; RSS < 250 MB at 1M.

Usage: .venv/bin/python benchmarks/pages.py [--sizes 1000,100000,1000000] [--pg-size 100000]
       [--requests 20] [--results benchmarks/RESULTS.md] [--cache /var/tmp/prodpanel-bench] [--fresh]
       [--skip REGEX] [--only REGEX]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402 (after the path is set)
    ensure_user,
    login,
    pg_admin,
    rebuild_statistics_and_analyze,
    settings,
)

# --- seeding ---------------------------------------------------------------------------------------

ADMIN = "bench-admin"  # the account the worker browses as
SEED_VERSION = 2  # bump when the seeding changes: cached databases of another version are seeded again
WORLD_TASKS = 200  # the measured bunch (tests/speed/world.py): a chain of two bunches of 200, a clone
REQUEST_BUNCHES = 40  # one production request per 40 bunches: a request's page reads as much at 1k as at 1M


def seed(instance: Path, url: str, size: int) -> dict[str, Any]:
    """Seed an empty, migrated database to `size` tasks; returns the measured world (its URL ids).

    The mass comes from bulk inserts (benchmarks/seed_tasks.py: tasks as the sync leaves them, their
    bunches, chains and users) and INSERT … SELECT statements for what the other pages read: one
    launch per task, a status change and a PanDA-log row per task in PanDA, an audit event per bunch,
    a production request per 40 bunches. The measured pages' own rows are then made by the app's
    services (tests/speed/world.py): a chain of two bunches of 200 tasks with children, a clone,
    commands, a bulk action, PanDA calls, catalog entries and accounts. The statistics summary is
    rebuilt as the stats job would."""
    from sqlalchemy import create_engine, func, insert, literal, literal_column, select, text, update

    from app import create_app
    from app.audit.models import AuditEvent
    from app.auth.models import User
    from app.extensions import db
    from app.panda.models import PandaCall
    from app.sync.models import TaskStatusChange
    from app.tasks.models import Task, TaskBunch
    from benchmarks import seed_tasks
    from tests.speed import world

    mass = max(
        0, size - 2 * WORLD_TASKS - WORLD_TASKS
    )  # the world adds a chain of 2 x 200 and a clone of 200
    engine = create_engine(url)
    with engine.begin() as conn:
        seed_tasks.seed(conn, mass, seed_value=17)
        conn.execute(
            update(Task)
            .where(Task.request_id.is_not(None))
            .values(request_id=1000 + Task.bunch_id // REQUEST_BUNCHES)
        )
        pg = conn.dialect.name == "postgresql"
        empty = literal_column("CAST('{}' AS json)" if pg else "'{}'")  # SQLite's CAST(… AS json) is numeric
        set_request = ("CAST(jsonb_set(CAST({col} AS jsonb), '{{request_id}}', to_jsonb(1000 + {id} / %d)) AS json)"
                       if pg else "json_set({col}, '$.request_id', 1000 + {id} / %d)") % REQUEST_BUNCHES  # fmt: skip
        conn.execute(
            text(
                f"UPDATE task SET spec = {set_request.format(col='spec', id='bunch_id')} WHERE request_id IS NOT NULL"
            )
        )
        conn.execute(text(f"UPDATE task_bunch SET definition = {set_request.format(col='definition', id='id')} "
                          "WHERE id IN (SELECT bunch_id FROM task WHERE request_id IS NOT NULL)"))  # fmt: skip
        sent = Task.panda_task_id.is_not(None)
        _launches(conn, sent)
        conn.execute(insert(TaskStatusChange).from_select(
            ["task_id", "status", "began_at"],
            select(Task.id, Task.panda_status, func.coalesce(Task.started_at, Task.submitted_at)).where(sent),
        ))  # fmt: skip
        conn.execute(insert(PandaCall).from_select(
            ["at", "user_id", "server", "transport", "method", "task_id", "params", "http_status", "return_code",
             "message", "duration_ms", "outcome", "attempt", "comment"],
            select(Task.submitted_at, Task.created_by_id, literal("https://pandaserver.example:25443"), literal("v1"),
                   literal("submit"), Task.panda_task_id, empty, literal(200), literal(0), literal(""),
                   literal(80), literal("ok"), literal(1), literal("")).where(sent),
        ))  # fmt: skip
        conn.execute(insert(AuditEvent).from_select(
            ["at", "user_id", "username", "action", "target", "outcome", "request_id", "client_address", "details"],
            select(TaskBunch.created_at, TaskBunch.created_by_id, literal("seed-user"), literal("task.create"),
                   TaskBunch.base_name, literal("ok"), literal(""), literal(""), empty),
        ))  # fmt: skip
        if pg:  # rows inserted with their ids leave PostgreSQL's sequences behind
            for table in ("task", "task_bunch", "chain", "chain_step", "launch", "panda_call", "audit_event",
                          "task_status_change", "user"):  # fmt: skip
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                                  f"(SELECT coalesce(max(id), 0) + 1 FROM \"{table}\"), false)"))  # fmt: skip
    engine.dispose()
    app = create_app(settings(instance, url))
    with app.app_context():
        ensure_user(ADMIN, "admin")
        w = world.build(db.session.scalars(select(User).where(User.username == ADMIN)).one(), WORLD_TASKS, 2)
        db.session.remove()
        db.engine.dispose()
    rebuild_statistics_and_analyze(instance, url)
    return dataclasses.asdict(w)


def _launches(conn, sent) -> None:
    """One launch per seeded task: submitted with its PanDA id, else cancelled (a history of 1M tasks
    has no thousands of launches waiting)."""
    from sqlalchemy import String, case, cast, func, insert, literal, select

    from app.launches.models import Launch
    from app.tasks.models import Task

    status = case((sent, literal("submitted")), else_=literal("cancelled"))
    conn.execute(insert(Launch).from_select(
        ["task_id", "idempotency_key", "attempt", "status", "due_at", "created_by_id", "created_at", "claimed_at",
         "finished_at", "panda_task_id", "error", "after_parent_done", "token_problem"],
        select(Task.id, literal("seed-") + cast(Task.id, String), literal(1), status, Task.created_at,
               Task.created_by_id, Task.created_at, Task.submitted_at, func.coalesce(Task.submitted_at, Task.created_at),
               Task.panda_task_id, literal(""), literal(False), literal("")),
    ))  # fmt: skip


# --- measuring (the worker process) ---------------------------------------------------------------


def worker(instance: Path, url: str, requests: int, skip: str = "", only: str = "") -> dict:
    """Serve every page in this process and time it (run as a subprocess): server time and this
    process's CPU time per request."""
    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import db
    from app.tasks.models import Task
    from tests.speed.test_statements import page_urls, variants
    from tests.speed.world import World

    app = create_app(settings(instance, url))
    world = World(**json.loads((instance / WORLD_FILE).read_text()))
    with app.app_context():
        urls = {label: path for label, path in (page_urls(app, world) | variants(world)).items()
                if not (skip and re.search(skip, label))
                and (not only or re.search(only, label) or label == "web.healthz")}  # fmt: skip
        count = db.session.scalar(select(func.count()).select_from(Task)) or 0
        db.session.remove()
    client = app.test_client()
    login(client, ADMIN)
    out: dict[str, dict[str, Any]] = {}
    for label, path in sorted(urls.items()):
        times: list[float] = []
        cpu: list[float] = []
        warm_ups = 0
        # Three warm-up requests (caches, compiled templates); a page slower than 2 s is timed three
        # times without them, so that an O(N) page at 1M does not hold the run for hours.
        while len(times) < (3 if times and max(times) >= 2000 else requests):
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.get(path, buffered=False)
            for _chunk in response.iter_encoded():  # read as a browser does, nothing kept: an export
                pass  # streams, and the worker's RSS is then the server's, not a buffer of the download
            response.close()
            elapsed = (time.perf_counter() - started) * 1000
            if warm_ups < 3 and elapsed < 2000:
                warm_ups += 1
            else:
                times.append(elapsed)
                cpu.append((time.process_time() - started_cpu) * 1000)
        times.sort()
        out[label] = {"p50": statistics.median(times), "p95": times[math.ceil(len(times) * 0.95) - 1],
                      "cpu": statistics.median(cpu), "status": response.status_code, "rss": _peak_rss_mb()}  # fmt: skip
    return {"pages": out, "rss_mb": max(p["rss"] for p in out.values()), "tasks": count}


def _peak_rss_mb() -> float:
    """The process's peak RSS since the last call (MB): VmHWM, then reset through clear_refs (Linux),
    so that each page's own peak is seen."""
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    with contextlib.suppress(OSError):  # not resettable here: the peaks are then cumulative
        Path("/proc/self/clear_refs").write_text("5")
    return peak


# --- orchestration ---------------------------------------------------------------------------------

WORLD_FILE = "world.json"  # written last: a folder without it holds no finished seeding


def seeded(cache: Path, db_kind: str, size: int, fresh: bool) -> tuple[Path, str, float | None]:
    """The instance folder and database URL of a database seeded to `size` tasks at the current schema
    head, from the cache when one was seeded before (the seconds seeding took; None: reused)."""
    from sqlalchemy import create_engine

    from app import migrate

    key = f"{db_kind}-{size}-{migrate.head()}-v{SEED_VERSION}"
    instance = cache / key
    # The cache folder's hash in the name: two runs with their own caches never drop each other's database.
    folder = hashlib.sha256(str(cache.resolve()).encode()).hexdigest()[:8]
    name = "prodpanel_bench_" + "".join(c if c.isalnum() else "_" for c in key)[:38].lower() + "_" + folder  # 63: the longest name
    if db_kind == "postgresql":
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        exists = bool(pg_admin(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"))
    else:
        url = f"sqlite:///{instance / 'prodpanel.sqlite3'}"
        exists = (instance / "prodpanel.sqlite3").exists()
    if exists and (instance / WORLD_FILE).exists() and not fresh:
        return instance, url, None
    started = time.perf_counter()
    if instance.exists():
        shutil.rmtree(instance)
    instance.mkdir(parents=True, mode=0o700)
    if db_kind == "postgresql":
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg_admin(f'CREATE DATABASE "{name}"')
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    world = seed(instance, url, size)
    (instance / WORLD_FILE).write_text(json.dumps(world))
    return instance, url, time.perf_counter() - started


def run(
    db_kind: str, sizes: list[int], requests: int, cache: Path, fresh: bool, skip: str, only: str = ""
) -> list[dict]:
    results = []
    for size in sizes:
        instance, url, seeded_s = seeded(cache, db_kind, size, fresh)
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", str(instance), "--url", url, "--requests", str(requests),
             "--skip", skip, "--only", only],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode:
            raise SystemExit(f"the worker failed:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result.update(db=db_kind, size=size, seed_s=seeded_s)
        results.append(result)
        how = f"seeded in {seeded_s:.0f} s" if seeded_s is not None else "cached"
        print(f"{db_kind} {result['tasks']:,} tasks ({how}): /healthz p50 {result['pages']['web.healthz']['p50']:.1f} ms, "
              f"RSS {result['rss_mb']:.0f} MB", flush=True)  # fmt: skip
    return results


def _cell(result: dict, label: str) -> str:
    timing = result["pages"].get(label)
    return f"{timing['p50']:.1f} / {timing['p95']:.1f}" if timing else "—"


def report(results: list[dict], command: str) -> str:
    """A markdown table: each page's p50/p95 per size, ratios to the smallest size and to /healthz,
    CPU per request, PostgreSQL against SQLite; then the issue's targets, met or not."""
    sqlite = [r for r in results if r["db"] == "sqlite"]
    pg = [r for r in results if r["db"] == "postgresql"]
    base, largest = sqlite[0], sqlite[-1]
    same = next((r for r in sqlite if pg and r["size"] == pg[0]["size"]), None)
    lines = [f"Command: `{command}` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)", "",
             "Server time in ms (p50 / p95, in-process WSGI, logged-in admin); ratios of p50; CPU: ms of the "
             "worker's CPU per request (p50; on a busy machine it shows growth better than the wall time). Tasks: " + ", ".join(f"{r['db']} {r['tasks']:,}" for r in results) + ".", ""]  # fmt: skip
    head = ["page", *(f"SQLite {r['tasks']:,}" for r in sqlite), f"{largest['tasks']:,} / {base['tasks']:,}",
            f"{largest['tasks']:,} / healthz", f"CPU ms {base['tasks']:,} / {largest['tasks']:,}"]  # fmt: skip
    if pg:
        head += [f"PostgreSQL {pg[0]['tasks']:,}", "PG / SQLite"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ratios: dict[str, float] = {}
    pg_ratios: dict[str, float] = {}
    for label, timing in base["pages"].items():
        cells = [_cell(r, label) for r in sqlite]
        big = largest["pages"].get(label)
        if big:
            ratios[label] = big["p50"] / timing["p50"]
            cells += [f"{ratios[label]:.2f}", f"{big['p50'] / largest['pages']['web.healthz']['p50']:.1f}",
                      f"{timing['cpu']:.1f} / {big['cpu']:.1f}"]  # fmt: skip
        else:
            cells += ["—", "—", "—"]
        if pg and same:
            p = pg[0]["pages"].get(label)
            if p and label in same["pages"]:
                pg_ratios[label] = p["p50"] / same["pages"][label]["p50"]
            cells += [_cell(pg[0], label), f"{pg_ratios[label]:.2f}" if label in pg_ratios else "—"]
        lines.append(f"| {label} (HTTP {timing['status']}) | " + " | ".join(cells) + " |")
    rss = ", ".join(f"{r['db']} {r['tasks']:,}: {r['rss_mb']:.0f} MB" for r in results)
    heavy = sorted(largest["pages"].items(), key=lambda item: -item[1].get("rss", 0))[:3]
    rss += " (largest peaks at " + ", ".join(f"{k} {v.get('rss', 0):.0f} MB" for k, v in heavy) + ")"
    slow = {k: v["p50"] for k, v in largest["pages"].items() if v["p50"] >= 50}
    cpu = {k: largest["pages"][k]["cpu"] for k in ("tasks.index", "tasks.detail") if k in largest["pages"]}
    seeding = ", ".join(f"{r['db']} {r['tasks']:,} " + (f"in {r['seed_s']:.0f} s" if r["seed_s"] is not None else "cached")
                        for r in results)  # fmt: skip

    def listed(found: dict[str, float], unit: str) -> str:
        return ", ".join(
            f"{k} {v:.{1 if unit == ' ms' else 2}f}{unit}"
            for k, v in sorted(found.items(), key=lambda i: -i[1])
        )

    beyond = {k: v for k, v in ratios.items() if v > 3}
    pg_beyond = {k: v for k, v in pg_ratios.items() if v > 1.5}
    lines += [
        "", f"Worker peak RSS: {rss}. Seeding: {seeding}.",
        f"- Within 3x of {base['tasks']:,} at {largest['tasks']:,}: "
        + ("every page." if not beyond else f"not {len(beyond)} page(s): {listed(beyond, 'x')}."),
        f"- p50 under 50 ms at {largest['tasks']:,}: " + ("every page." if not slow else f"not {listed(slow, ' ms')}."),
        f"- CPU per request at {largest['tasks']:,} (target < 10 ms): {listed(cpu, ' ms')}.",
    ]  # fmt: skip
    if pg_ratios:
        lines.append("- PostgreSQL within 1.5x of SQLite: "
                     + ("every page." if not pg_beyond else f"not {len(pg_beyond)} page(s): {listed(pg_beyond, 'x')}."))  # fmt: skip
    return "\n".join(lines)


def cli_start() -> tuple[float, float]:
    """`prodpanel --help`: the best wall and CPU seconds (user + sys) of three runs."""
    runs = []
    for _ in range(3):
        before, started = os.times(), time.perf_counter()
        subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "--help"], cwd=ROOT,
                       capture_output=True, check=True)  # fmt: skip
        after = os.times()
        cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        runs.append((time.perf_counter() - started, cpu))
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--pg-size", type=int, default=100_000, help="0: no PostgreSQL run")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument(
        "--cache",
        default="/var/tmp/prodpanel-bench",
        help="seeded databases are kept here and reused while size, schema head and seeding match",
    )
    parser.add_argument("--fresh", action="store_true", help="seed again even when a cached database matches")
    parser.add_argument("--skip", default="", help="leave out the pages whose label matches this regex "
                        "(e.g. 'export': the downloads of every matching task take minutes at 1M)")
    parser.add_argument("--only", default="", help="measure only the pages whose label matches this regex "
                        "(and /healthz, the report's reference), e.g. 'launches|successful'")
    parser.add_argument("--worker")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(Path(args.worker), args.url, args.requests, args.skip, args.only)))
        return
    cache = Path(args.cache)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = run("sqlite", sizes, args.requests, cache, args.fresh, args.skip, args.only)
    if args.pg_size:
        results += run("postgresql", [args.pg_size], args.requests, cache, args.fresh, args.skip, args.only)
    command = "python benchmarks/pages.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    wall, cpu = cli_start()
    text = report(results, command.strip()) + f"\n- `prodpanel --help` (target < 0.5 s): {wall:.2f} s wall, {cpu:.2f} s CPU."
    print(text)
    with Path(args.results).open("a") as fh:
        fh.write(f"\n## Pages (benchmarks/pages.py)\n\n{text}\n")


if __name__ == "__main__":
    main()
