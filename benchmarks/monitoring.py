"""Benchmark: the task tables at 1 000, 100 000 and 1 000 000 tasks, on SQLite and on PostgreSQL.

For each database the tasks are seeded by bulk inserts (benchmarks/seed_tasks.py: rows as the sync
leaves them), growing to each size in turn; the statistics' per-day summary is rebuilt from them when
the statistics page exists. A separate worker process (so that its memory is the server's, not the
seeder's) serves the pages in-process through the WSGI app and times each request's server time:

  main table, default sort        /tasks/
  main table, filtered sort       /tasks/?status=running&sort=submitted_at&order=asc
  main table, deep page           /tasks/?after=<the middle row>  (keyset)
  counts per status               /tasks/counts?table=tasks
  successful table (totals row)   /tasks/successful
  statistics page                 /statistics/   (when the route exists)
  /healthz                        the floor, measured in the same run

It prints p50 and p95 (ms) per page and size, each main-table p50 as a ratio of its p50 at the smallest
size, and the worker's RSS. Targets (issue 12): main table at 1M within 3x of 1k and < 50 ms;
statistics < 200 ms; RSS < 250 MB.

Usage: .venv/bin/python benchmarks/monitoring.py [--sizes 1000,100000,1000000] [--dbs sqlite,postgresql]
       [--requests 40] [--pg-admin "host=127.0.0.1 port=5432 dbname=test user=postgres"]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGES = {
    "main, default sort": "/tasks/",
    "main, filtered sort": "/tasks/?status=running&sort=submitted_at&order=asc",
    "main, deep page": "/tasks/?after={deep}",
    "counts per status": "/tasks/counts?table=tasks",
    "successful table": "/tasks/successful",
    "statistics": "/statistics/",
    "/healthz": "/healthz",
}
PASSWORD = "benchmark-password-1"


def _settings(instance: Path, database_url: str):
    import dataclasses

    from app.config import load_settings

    settings = load_settings(instance, env={})
    return dataclasses.replace(settings, database_url=database_url)


def grow(instance: Path, database_url: str, target: int) -> float:
    """Seed tasks until the database holds `target`; returns the seconds it took."""
    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import db
    from app.tasks.models import Task
    from benchmarks.seed_tasks import seed

    started = time.perf_counter()
    app = create_app(_settings(instance, database_url))
    with app.app_context():
        have = db.session.scalar(select(func.count()).select_from(Task)) or 0
        with db.engine.begin() as conn:
            seed(conn, target - have, seed_value=target)
        if "statistics.index" in app.view_functions:
            from app.stats import summary

            summary.rebuild()
            db.session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        else:
            with db.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        db.engine.dispose()
    return time.perf_counter() - started


def worker(instance: Path, database_url: str, requests: int) -> dict:
    """Serve the pages in this process and time them (run as a subprocess)."""
    from sqlalchemy import func, select

    from app import create_app
    from app.auth.services import create_local_user
    from app.extensions import db
    from app.monitoring.tables import encode_cursor
    from app.tasks.models import Task

    app = create_app(_settings(instance, database_url))
    with app.app_context():
        name = f"bench-{secrets.token_hex(3)}"
        user = create_local_user(name, PASSWORD, role="viewer")
        user.must_change_password = False
        db.session.commit()
        count = db.session.scalar(select(func.count()).select_from(Task)) or 0
        middle = db.session.scalar(select(Task.id).order_by(Task.id).offset(count // 2).limit(1))
        deep = encode_cursor([middle])
        db.session.remove()
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    response = client.post("/login", data={"csrf_token": token, "username": name, "password": PASSWORD})
    assert response.status_code == 302, response.status_code
    out: dict[str, dict[str, float]] = {}
    for label, path in PAGES.items():
        if label == "statistics" and "statistics.index" not in app.view_functions:
            continue
        url = path.format(deep=deep)
        times = []
        for i in range(requests + 3):
            started = time.perf_counter()
            response = client.get(url)
            response.get_data()
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200 or url == "/healthz", (url, response.status_code)  # no PanDA here: 503
            if i >= 3:  # the first requests warm caches and compile templates
                times.append(elapsed)
        times.sort()
        out[label] = {"p50": statistics.median(times), "p95": times[int(len(times) * 0.95) - 1]}
    status = Path("/proc/self/status").read_text().splitlines()
    rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    return {"pages": out, "rss_mb": rss_kb / 1024, "tasks": count}


def _pg_database(admin: str) -> tuple[str, Callable[[], None]]:
    import psycopg

    name = f"prodpanel_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = dict(part.split("=", 1) for part in admin.split())

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    url = f"postgresql+psycopg://{params.get('user', 'postgres')}@{params['host']}:{params.get('port', 5432)}/{name}"
    return url, drop


def run(db_kind: str, sizes: list[int], requests: int, pg_admin: str) -> list[dict]:
    from sqlalchemy import create_engine

    from app import migrate

    results = []
    with tempfile.TemporaryDirectory() as folder:
        instance = Path(folder)
        drop = None
        if db_kind == "postgresql":
            url, drop = _pg_database(pg_admin)
        else:
            url = f"sqlite:///{instance / 'prodpanel.sqlite3'}"
        try:
            engine = create_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
            for size in sizes:
                seeded_s = grow(instance, url, size)
                proc = subprocess.run(
                    [sys.executable, __file__, "--worker", str(instance), "--url", url, "--requests", str(requests)],
                    capture_output=True, text=True,
                )  # fmt: skip
                if proc.returncode:
                    raise SystemExit(f"the worker failed:\n{proc.stderr[-3000:]}")
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                result.update(db=db_kind, size=size, seed_s=seeded_s)
                results.append(result)
                print(_line(result), flush=True)
        finally:
            if drop:
                drop()
    return results


def _line(result: dict) -> str:
    pages = ", ".join(f"{k} {v['p50']:.1f}/{v['p95']:.1f}" for k, v in result["pages"].items())
    return f"{result['db']} {result['size']:>9,} tasks (seeded in {result['seed_s']:.0f} s): {pages} ms; RSS {result['rss_mb']:.0f} MB"


def report(results: list[dict], command: str) -> str:
    lines = [f"Command: `{command}`", "", "p50 / p95 server time in ms (in-process WSGI, logged-in viewer), worker RSS.", ""]
    labels = list(PAGES)
    head = "| database | tasks | " + " | ".join(labels) + " | RSS MB |"
    lines += [head, "|" + "---|" * (len(labels) + 3)]
    for r in results:
        cells = [f"{r['pages'][k]['p50']:.1f} / {r['pages'][k]['p95']:.1f}" if k in r["pages"] else "—" for k in labels]
        lines.append(f"| {r['db']} | {r['size']:,} | " + " | ".join(cells) + f" | {r['rss_mb']:.0f} |")
    lines += ["", "Main table p50 as a multiple of its p50 at the smallest size:", ""]
    for db_kind in dict.fromkeys(r["db"] for r in results):
        rows = [r for r in results if r["db"] == db_kind]
        base = rows[0]
        for r in rows[1:]:
            ratios = ", ".join(
                f"{k} {r['pages'][k]['p50'] / base['pages'][k]['p50']:.2f}x" for k in labels if k.startswith("main")
            )
            lines.append(f"- {db_kind} {r['size']:,} vs {base['size']:,}: {ratios}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--dbs", default="sqlite,postgresql")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--pg-admin", default="host=127.0.0.1 port=5432 dbname=test user=postgres")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        os.environ.setdefault("PRODPANEL_LOG_LEVEL", "WARNING")
        print(json.dumps(worker(Path(args.worker), args.url, args.requests)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    for db_kind in args.dbs.split(","):
        results += run(db_kind, sizes, args.requests, args.pg_admin)
    print()
    print(report(results, "python benchmarks/monitoring.py " + " ".join(sys.argv[1:])))


if __name__ == "__main__":
    main()
