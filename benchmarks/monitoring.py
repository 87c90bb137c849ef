"""Benchmark: the task tables at 1 000, 100 000 and 1 000 000 tasks, on SQLite and on PostgreSQL.

For each database the tasks are seeded by bulk inserts (benchmarks/seed_tasks.py: rows as the sync
leaves them; COPY on PostgreSQL; the task table's indexes built once after the rows), each size
grown from a copy of the size below; the statistics' per-day summary is rebuilt from them. Each
seeded database is kept in --cache (SQLite files; PostgreSQL databases named prodpanel_bench_monitoring_…)
and reused while its size, schema head and seed version match, so that a re-run measures at once
(--fresh seeds again). A separate worker process (so that its memory is the server's, not the
seeder's) serves the pages in-process through the WSGI app and times each request's server time:

  main table, default sort        /tasks/
  main table, filtered sort       /tasks/?status=running&sort=submitted_at&order=asc
  main table, progress sort       /tasks/?sort=progress  (a generated column's index)
  main table, deep page           /tasks/?after=<the middle row>  (keyset)
  main table, name contains       /tasks/?q=*.b<a bunch in the middle>.*  (the trigram index)
  counts per status               /tasks/counts?table=tasks
  successful table                /tasks/successful
  its totals row (loaded after)   /tasks/successful/totals  (a sum over every successful task)
  statistics page                 /statistics/
  /healthz                        the floor, measured in the same run

It prints p50 and p95 (ms) per page and size, each main-table p50 as a ratio of its p50 at the smallest
size, the worker's RSS and the machine's load, and writes them to --results (benchmarks/RESULTS.md:
the section of this benchmark is replaced). Targets (issue 12): main table at 1M within 3x of 1k and
< 50 ms; statistics < 200 ms; RSS < 250 MB.

Usage: .venv/bin/python benchmarks/monitoring.py [--sizes 1000,100000,1000000] [--dbs sqlite,postgresql]
       [--requests 40] [--cache /var/tmp/prodpanel-bench] [--fresh] [--results benchmarks/RESULTS.md]
       [--pg-admin "host=127.0.0.1 port=5432 dbname=test user=postgres"]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402 (after the path is set)
    PG_ADMIN,
    ensure_user,
    login,
    pg_admin,
    rebuild_statistics_and_analyze,
    settings,
)

PAGES = {
    "main, default sort": "/tasks/",
    "main, filtered sort": "/tasks/?status=running&sort=submitted_at&order=asc",
    "main, progress sort": "/tasks/?sort=progress",
    "main, deep page": "/tasks/?after={deep}",
    "main, name contains": "/tasks/?q=*.b{bunch}.*",
    "counts per status": "/tasks/counts?table=tasks",
    "successful table": "/tasks/successful",
    "successful totals row": "/tasks/successful/totals",
    "statistics": "/statistics/",
    "/healthz": "/healthz",
}
VIEWER = "bench-viewer"
SEED_VERSION = 2  # bump when the seeding changes: cached databases of another version are seeded again
SECTION = "## Task tables (`benchmarks/monitoring.py`, issue 12 §9)"


def grow(instance: Path, database_url: str, target: int) -> None:
    """Seed tasks until the database holds `target`, rebuild the statistics' summary, ANALYZE."""
    from sqlalchemy import create_engine, func, select

    from app.tasks.models import Task
    from benchmarks.seed_tasks import seed

    engine = create_engine(database_url)
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA cache_size = -262144")  # 256 MB of pages while the indexes build
        have = conn.scalar(select(func.count()).select_from(Task)) or 0
        seed(conn, target - have, seed_value=target)
    engine.dispose()
    rebuild_statistics_and_analyze(instance, database_url)


class Cache:
    """Seeded databases kept between runs: one per database kind, size, schema head and seed version,
    each marked complete (seeded.json) only once its seeding finished."""

    def __init__(self, root: Path, db_kind: str, pg_admin: str) -> None:
        from app import migrate

        self.root, self.db_kind, self.pg_admin, self.head = root, db_kind, pg_admin, migrate.head()

    def key(self, size: int) -> str:
        return f"monitoring-{self.db_kind}-{size}-{self.head}-v{SEED_VERSION}"

    def instance(self, size: int) -> Path:
        return self.root / self.key(size)

    def _pg_name(self, size: int) -> str:
        return "prodpanel_bench_" + "".join(c if c.isalnum() else "_" for c in self.key(size)).lower()[:47]

    def url(self, size: int) -> str:
        if self.db_kind == "postgresql":
            params = dict(part.split("=", 1) for part in self.pg_admin.split())
            host, port, user = params["host"], params.get("port", 5432), params.get("user", "postgres")
            return f"postgresql+psycopg://{user}@{host}:{port}/{self._pg_name(size)}"
        return f"sqlite:///{self.instance(size) / 'prodpanel.sqlite3'}"

    def _exists(self, size: int) -> bool:
        if self.db_kind == "postgresql":
            return bool(pg_admin(f"SELECT 1 FROM pg_database WHERE datname = '{self._pg_name(size)}'", self.pg_admin))
        return (self.instance(size) / "prodpanel.sqlite3").exists()

    def ready(self, size: int) -> bool:
        """A complete database of this size at this head is cached (checked in the database too)."""
        from sqlalchemy import create_engine, func, select

        from app import migrate
        from app.tasks.models import Task

        if not (self.instance(size) / "seeded.json").exists() or not self._exists(size):
            return False
        engine = create_engine(self.url(size))
        try:
            with engine.connect() as conn:
                count = conn.scalar(select(func.count()).select_from(Task))
            return count == size and migrate.state(engine).current == self.head
        finally:
            engine.dispose()

    def drop(self, size: int) -> None:
        if self.db_kind == "postgresql":
            pg_admin(f'DROP DATABASE IF EXISTS "{self._pg_name(size)}" WITH (FORCE)', self.pg_admin)
        shutil.rmtree(self.instance(size), ignore_errors=True)

    def copy(self, source: int, size: int) -> None:
        """Start the database of `size` as a copy of the cached one of `source` tasks."""
        self.instance(size).mkdir(parents=True, mode=0o700)
        if self.db_kind == "postgresql":
            pg_admin(f'CREATE DATABASE "{self._pg_name(size)}" TEMPLATE "{self._pg_name(source)}"', self.pg_admin)
            return
        src = sqlite3.connect(self.instance(source) / "prodpanel.sqlite3")
        dst = sqlite3.connect(self.instance(size) / "prodpanel.sqlite3")
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()

    def create(self, size: int) -> None:
        from sqlalchemy import create_engine

        from app import migrate

        self.instance(size).mkdir(parents=True, mode=0o700)
        if self.db_kind == "postgresql":
            pg_admin(f'CREATE DATABASE "{self._pg_name(size)}"', self.pg_admin)
        engine = create_engine(self.url(size))
        migrate.upgrade(engine)
        engine.dispose()

    def seeded(self, size: int, below: list[int], fresh: bool) -> float | None:
        """Make sure a database of `size` tasks is cached; the seconds seeding took (None: reused)."""
        if not fresh and self.ready(size):
            return None
        started = time.perf_counter()
        self.drop(size)
        source = next((n for n in sorted(below, reverse=True) if n < size and self.ready(n)), None)
        if source is not None:
            self.copy(source, size)
        else:
            self.create(size)
        grow(self.instance(size), self.url(size), size)
        seconds = time.perf_counter() - started
        (self.instance(size) / "seeded.json").write_text(json.dumps({"size": size, "from": source, "seconds": seconds}))
        return seconds


def worker(instance: Path, database_url: str, requests: int) -> dict:
    """Serve the pages in this process and time them (run as a subprocess)."""
    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import db
    from app.monitoring.tables import encode_cursor
    from app.tasks.models import Task

    app = create_app(settings(instance, database_url))
    with app.app_context():
        ensure_user(VIEWER, "viewer")
        count = db.session.scalar(select(func.count()).select_from(Task)) or 0
        middle = db.session.scalar(select(Task.id).order_by(Task.id).offset(count // 2).limit(1))
        deep = encode_cursor([middle])
        bunch = db.session.scalar(select(Task.bunch_id).where(Task.id == middle))
        db.session.remove()
    client = app.test_client()
    login(client, VIEWER)
    out: dict[str, dict[str, float]] = {}
    for label, path in PAGES.items():
        url = path.format(deep=deep, bunch=bunch)
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


def run(db_kind: str, sizes: list[int], requests: int, pg_admin: str, cache_root: Path, fresh: bool) -> list[dict]:
    cache = Cache(cache_root, db_kind, pg_admin)
    results = []
    for size in sizes:
        seeded_s = cache.seeded(size, sizes, fresh)
        instance, url = cache.instance(size), cache.url(size)
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", str(instance), "--url", url, "--requests", str(requests)],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode:
            raise SystemExit(f"the worker failed:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result.update(db=db_kind, size=size, seed_s=seeded_s, load=os.getloadavg()[0])
        results.append(result)
        print(_line(result), flush=True)
    return results


def _line(result: dict) -> str:
    pages = ", ".join(f"{k} {v['p50']:.1f}/{v['p95']:.1f}" for k, v in result["pages"].items())
    how = f"seeded in {result['seed_s']:.0f} s" if result["seed_s"] is not None else "cached"
    return f"{result['db']} {result['size']:>9,} tasks ({how}): {pages} ms; RSS {result['rss_mb']:.0f} MB"


def report(results: list[dict], command: str, began: datetime, ended: datetime) -> str:
    lines = [
        f"Command: `{command}`", "",
        f"Run {began:%Y-%m-%d %H:%M}–{ended:%H:%M} UTC on {os.cpu_count()} cores; load average (1 min) at each"
        " size's measurement: " + ", ".join(f"{r['db']} {r['size']:,}: {r['load']:.1f}" for r in results) + ".",
        "Seeding: " + ", ".join(
            f"{r['db']} {r['size']:,} " + (f"in {r['seed_s']:.0f} s" if r["seed_s"] is not None else "cached")
            for r in results
        ) + ".", "",
        "p50 / p95 server time in ms (in-process WSGI, logged-in viewer, after 3 warm-up requests), worker RSS.", "",
    ]  # fmt: skip
    labels = list(PAGES)
    head = "| database | tasks | " + " | ".join(labels) + " | RSS MB |"
    lines += [head, "|" + "---|" * (len(labels) + 3)]
    for r in results:
        cells = [f"{r['pages'][k]['p50']:.1f} / {r['pages'][k]['p95']:.1f}" if k in r["pages"] else "—" for k in labels]
        lines.append(f"| {r['db']} | {r['size']:,} | " + " | ".join(cells) + f" | {r['rss_mb']:.0f} |")
    lines += ["", "Main table p50 as a multiple of its p50 at the smallest size, and the targets:", ""]
    for db_kind in dict.fromkeys(r["db"] for r in results):
        rows = [r for r in results if r["db"] == db_kind]
        base, top = rows[0], rows[-1]
        for r in rows[1:]:
            ratios = ", ".join(
                f"{k} {r['pages'][k]['p50'] / base['pages'][k]['p50']:.2f}x" for k in labels if k.startswith("main")
            )
            lines.append(f"- {db_kind} {r['size']:,} vs {base['size']:,}: {ratios}")
        mains = {k: v["p50"] for k, v in top["pages"].items() if k.startswith("main")}
        worst = max(mains.values())
        worst_ratio = max(v / base["pages"][k]["p50"] for k, v in mains.items())
        stats = top["pages"].get("statistics", {}).get("p50")
        verdict = [
            f"main table p50 at most {worst:.1f} ms ({'<' if worst < 50 else 'NOT <'} 50 ms)",
            f"at most {worst_ratio:.2f}x its p50 at {base['size']:,} ({'within' if worst_ratio <= 3 else 'NOT within'} 3x)",
            f"statistics {stats:.1f} ms ({'<' if stats < 200 else 'NOT <'} 200 ms)" if stats is not None else "no statistics",
            f"RSS {max(r['rss_mb'] for r in rows):.0f} MB ({'<' if max(r['rss_mb'] for r in rows) < 250 else 'NOT <'} 250 MB)",
        ]  # fmt: skip
        lines.append(f"- {db_kind} at {top['size']:,} tasks: " + "; ".join(verdict) + ".")
    return "\n".join(lines) + "\n"


def write_results(path: Path, text: str) -> None:
    """Replace this benchmark's section of RESULTS.md (or add it) with `text`."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"{SECTION}\n\n{text}\n"
    if SECTION in old:
        before, rest = old.split(SECTION, 1)
        after = rest[rest.find("\n## ") + 1 :] if "\n## " in rest else ""
        new = before + section + ("\n" + after if after else "")
    else:
        new = old.rstrip("\n") + "\n\n" + section
    path.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--dbs", default="sqlite,postgresql")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--pg-admin", default=PG_ADMIN)
    parser.add_argument("--cache", default="/var/tmp/prodpanel-bench", help="where seeded databases are kept")
    parser.add_argument("--fresh", action="store_true", help="seed again even when a cached database matches")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "RESULTS.md"), help="'' to write none")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        os.environ.setdefault("PRODPANEL_LOG_LEVEL", "WARNING")
        print(json.dumps(worker(Path(args.worker), args.url, args.requests)))
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    began = datetime.now(UTC)
    results = []
    for db_kind in args.dbs.split(","):
        results += run(db_kind, sizes, args.requests, args.pg_admin, cache, args.fresh)
    command = "python benchmarks/monitoring.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    text = report(results, command.strip(), began, datetime.now(UTC))
    print()
    print(text)
    if args.results:
        write_results(Path(args.results), text)
        print(f"written to {args.results}")


if __name__ == "__main__":
    main()
