"""Benchmark: a 100-task bunch against 100 single launches, side by side, with PanDA 50 ms away.

The panel (SQLite in a temporary instance, the real dispatcher and PanDA client) submits to the
simulator served over real HTTP on loopback, which adds `--latency-ms` to every call. Printed:

- the wall time of one bunch of N tasks (submits `[panda] max_parallel_submits` at a time);
- the wall time of N single launches, one task each, launched one after the other (each one's
  dispatch waits for its answer before the next is created, as a user clicking N times would);
- what the panel adds per task to the bunch: its wall time minus the time its PanDA submits took
  (as the PanDA log records them) divided by the submits in flight, per task;
- the panel's own time per task one at a time (`max_parallel_submits = 1`): the sequential
  dispatch's wall time minus the time its submits took, per task (creating the bunch, printed
  apart, is left out). Nothing overlaps the panel's work there, so it
  includes one SQLite commit per task (the claim must be on disk before the submit leaves: an fsync,
  whose cost on this disk is printed too).

Usage: .venv/bin/python benchmarks/launch.py [--tasks 100] [--latency-ms 50] [--parallel 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import create_engine, func, select

from app import create_app, migrate
from app.auth.services import create_local_user
from app.config import load_settings
from app.extensions import db
from app.launches import dispatcher
from app.launches.models import Launch
from app.panda.calllog import flush_call_log
from app.panda.models import PandaCall
from app.panda.sandbox import attach_sandbox
from app.tasks import services
from app.tasks.specs import TaskDefinition
from pandasim import Faults, SimConfig, create_simulator, serve_in_thread

EXEC = "/cvmfs/spd.jinr.ru/production/MC/minbias-P8-spdroot417-dev.10GeV.V01"
SIF = "/cvmfs/spd.jinr.ru/images/spdroot-dev-4.1.7.sif"


def definition(number: int, size: int) -> TaskDefinition:
    return TaskDefinition(
        step="SIM", task_name=f"PROD2026-{number:03d}.SIM", bunch_size=size,
        output_dataset=f"MC2025_S1.minbias-P8-spdroot417-dev.10GeV.PROD2026-{number:03d}.SIM.1",
        total_events=10000, events_per_job=1000, cloud="JINR", data_disk="JINR_DATADISK", request_id=42,
        skip_scout=True, initial_offset=0, exec_path=EXEC, container_path=SIF,
    )  # fmt: skip


def panel(folder: Path, running, parallel: int):
    instance = folder / "instance"
    instance.mkdir(mode=0o700)
    settings = load_settings(instance, env={})
    settings = dataclasses.replace(
        settings, panda=dataclasses.replace(settings.panda, transport="v1", max_parallel_submits=parallel)
    )
    engine = create_engine(settings.sqlalchemy_url)
    migrate.upgrade(engine)
    engine.dispose()
    app = create_app(settings)
    attach_sandbox(app, SimpleNamespace(url=running.url, app=running.app))
    return app


def submitted() -> int:
    return db.session.scalar(select(func.count()).select_from(Launch).where(Launch.status == "submitted")) or 0


CREATED_S: list[float] = []  # seconds each launch_bunch spent creating its bunch (before dispatching)


def launch_bunch(user, number: int, size: int) -> float:
    """Create a bunch and dispatch it until every task is in PanDA; seconds."""
    t0 = time.perf_counter()
    services.create_bunch(definition(number, size), user, f"bench-{number}", is_admin=False)
    db.session.commit()
    CREATED_S.append(time.perf_counter() - t0)
    target = submitted() + size
    while submitted() < target:
        dispatcher.dispatch_due(limit=1000)
    return time.perf_counter() - t0


def submit_ms() -> float:
    """Milliseconds the PanDA log says the submits took."""
    flush_call_log(30)
    return float(db.session.scalar(select(func.sum(PandaCall.duration_ms)).where(PandaCall.method == "submit")) or 0)


def commit_ms(folder: Path, commits: int = 50) -> float:
    """Milliseconds one small SQLite commit takes here (WAL, the panel's pragmas: synchronous FULL)."""
    connection = sqlite3.connect(folder / "fsync.sqlite3")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (a INTEGER)")
    t0 = time.perf_counter()
    for i in range(commits):
        connection.execute("INSERT INTO t VALUES (?)", (i,))
        connection.commit()
    connection.close()
    return (time.perf_counter() - t0) * 1000 / commits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    n = args.tasks
    sim = create_simulator(SimConfig(seed=3, time_scale=0.0, faults=Faults(latency_ms=args.latency_ms)))
    running = serve_in_thread(sim)
    try:
        with tempfile.TemporaryDirectory() as folder:
            app = panel(Path(folder), running, args.parallel)
            with app.app_context():
                user = create_local_user("bench", "bench-password-123", role="manager")
                db.session.commit()
                launch_bunch(user, 900, 1)  # warm-up: token minted, connections and caches made
                before = submit_ms()
                bunch_s = launch_bunch(user, 1, n)
                bunch_added_ms = (bunch_s * 1000 - (submit_ms() - before) / args.parallel) / n
                singles_t0 = time.perf_counter()
                for i in range(n):
                    launch_bunch(user, 100 + i, 1)
                singles_s = time.perf_counter() - singles_t0
                # The panel's own cost: one task at a time, minus what PanDA's answers took.
                app.config["SETTINGS"] = dataclasses.replace(
                    app.config["SETTINGS"],
                    panda=dataclasses.replace(app.config["SETTINGS"].panda, max_parallel_submits=1),
                )
                before = submit_ms()
                sequential_s = launch_bunch(user, 2, n)
                create_ms = CREATED_S[-1] * 1000 / n
                panel_ms = (sequential_s * 1000 - (submit_ms() - before)) / n - create_ms
                db.session.remove()
                db.engine.dispose()
            fsync_ms = commit_ms(Path(folder))
    finally:
        running.stop()
    print(f"PanDA latency {args.latency_ms} ms per call, {n} tasks, {args.parallel} submits in flight")
    print(f"  {'one bunch of ' + str(n):<28} {bunch_s:7.2f} s  {bunch_s / n * 1000:6.1f} ms/task")
    print(f"  {str(n) + ' single launches':<28} {singles_s:7.2f} s  {singles_s / n * 1000:6.1f} ms/task")
    print(f"  bunch speed-up               {singles_s / bunch_s:7.1f} x   (target >= 4 x)")
    print(f"  panel's time added per task  {bunch_added_ms:7.1f} ms  (target < 5 ms; the bunch minus PanDA's time / {args.parallel})")
    print(f"  panel's own time, one by one {panel_ms:7.1f} ms  (dispatching a sequential bunch minus PanDA's time; "
          f"an SQLite commit here takes {fsync_ms:.1f} ms)")  # fmt: skip
    print(f"  creating the bunch           {create_ms:7.1f} ms  per task (before its dispatch, in both figures above)")
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
