"""Benchmark: hostile requests against every route, counted by status (issue 16 item 1: 0 x 5xx).

The panel (SQLite in a temporary instance) gets every hostile value of tests/hardening/fuzz.py on
its own in every route's path variables, parameters and uploads, by GET and POST with a valid CSRF
token, as an admin and as a viewer; then seeded random requests until --requests are sent. Prints the
count by status, the routes that answered 5xx with a traceback, and writes the figure to
benchmarks/RESULTS.md.

Usage: .venv/bin/python benchmarks/fuzz.py [--requests 10000] [--workers 4] [--seed 16]
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.hardening.fuzz: the same requests as the test

from app import create_app, migrate  # noqa: E402
from app.config import load_settings  # noqa: E402
from app.extensions import db  # noqa: E402
from tests.hardening.fuzz import Fuzzer, Visitor, routes, simulated_panda  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
HEADER = "## Hostile requests (benchmarks/fuzz.py)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4, help="processes, each with its own panel and routes")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    started = time.perf_counter()
    jobs = [(shard, args.workers, args.requests // args.workers, args.seed + shard) for shard in range(args.workers)]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        results = pool.starmap(run_shard, jobs)
    seconds = time.perf_counter() - started
    statuses: Counter = sum((counts for counts, _, _ in results), Counter())
    failures = {key: trace for _, found, _ in results for key, trace in found.items()}
    routes_total = sum(n for _, _, n in results)
    sent = sum(statuses.values())
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    print(f"{sent} requests to {routes_total} routes in {seconds:.0f} s; {server_errors} x 5xx")
    for status, count in sorted(statuses.items()):
        print(f"{count:>7} x {status}")
    for key, trace in sorted(failures.items()):
        print(f"\n--- {key}\n{trace}")
    by_status = ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items()))
    write_results(
        f"{HEADER}\n\n{time.strftime('%Y-%m-%d', time.gmtime())}: {sent} hostile requests to {routes_total} "
        f"routes and methods (each value alone, as an admin and as a viewer, then random ones): "
        f"**{server_errors} x 5xx**; {by_status}.\n"
    )
    return 1 if server_errors else 0


def run_shard(shard: int, shards: int, requests: int, seed: int) -> tuple[Counter, dict[str, str], int]:
    """One worker: a panel of its own (temporary SQLite instance, PanDA simulator) and every
    `shards`-th route; each hostile value alone, then random requests until `requests` are sent."""
    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp) / "instance"
        instance.mkdir(mode=0o700)
        engine = create_engine(f"sqlite:///{instance / 'prodpanel.sqlite3'}")
        migrate.upgrade(engine)
        engine.dispose()
        app = create_app(load_settings(instance, env={}))
        mine = routes(app)[shard::shards]
        with app.app_context(), simulated_panda(app):
            fuzzer = Fuzzer(app, [Visitor(app, "admin"), Visitor(app, "viewer")])
            sent = sum(1 for _ in fuzzer.run(full=True, only=mine))
            rng = random.Random(seed)
            while sent < requests:
                rule, method = rng.choice(mine)
                fuzzer.send(rng.choice(fuzzer.visitors), rule, method, fuzzer.random_request(rule, rng))
                sent += 1
            db.session.remove()
            db.engine.dispose()
    return fuzzer.statuses, fuzzer.failures, len(mine)


def write_results(section: str) -> None:
    """Replace this benchmark's section of RESULTS.md (other benchmarks keep theirs)."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if HEADER in text:
        before, _, rest = text.partition(HEADER)
        after = rest.split("\n## ", 1)
        text = before + section + (f"\n## {after[1]}" if len(after) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
