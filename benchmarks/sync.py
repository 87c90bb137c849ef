"""Benchmark: PanDA calls and seconds per sync cycle with 1 000 and 10 000 active tasks.

The panel (SQLite in a temporary instance) follows N running tasks of one owner that the simulator
holds (served over real HTTP on loopback); the calls are counted by the simulator. Three cycles are
timed: the first (every task new to the sync), the second (status listing + counters of the running
ones), and one after an hour of simulated time (jobs ended: counters moved).

Usage: .venv/bin/python benchmarks/sync.py [--sizes 1000,10000] [--profile N]

Each cycle's seconds are split: inside the PanDA calls (the simulator, in this process, builds the
reply; HTTP; the client decodes it) and the panel's own (database) work.
--profile N prints the N costliest functions (cumulative) of each cycle, the panel's and the
simulator's (its HTTP server thread) apart: cProfile follows the cycle's own thread only, so the
simulator's time shows as the wait for its replies.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import os
import pstats
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import create_engine, insert

from app import clock, create_app, migrate
from app.auth.services import create_local_user
from app.config import load_settings
from app.extensions import db
from app.launches.models import Launch
from app.panda.calllog import flush_call_log
from app.panda.client import PandaClient
from app.panda.sandbox import attach_sandbox
from app.sync import jobs
from app.tasks.models import Task, TaskBunch
from pandasim import SimConfig, create_simulator, serve_in_thread

PARAMS = {
    "vo": "spd", "prodSourceLabel": "managed", "taskType": "prod", "processingType": "simul",
    "taskPriority": 900, "architecture": "", "transUses": "", "transHome": "", "transPath": "/cvmfs/run.sh",
    "noInput": True, "nEvents": 100000, "nEventsPerJob": 1000, "skipScout": True,
    "log": {"type": "template", "param_type": "log", "dataset": "bench.log", "value": "bench.log.${SN}.tgz"},
    "jobParameters": [{"type": "template", "param_type": "output", "dataset": "bench.root", "value": "--out bench.${SN/P}.root"}],
}  # fmt: skip


def panel(folder: Path, sim_url: str, sim):
    instance = folder / "instance"
    instance.mkdir(mode=0o700)
    settings = load_settings(instance, env={})
    settings = dataclasses.replace(
        settings,
        panda=dataclasses.replace(settings.panda, transport="v1", read_timeout_s=300.0, retries=0),
        sync=dataclasses.replace(settings.sync, max_tasks_per_call=20_000),
    )
    engine = create_engine(settings.sqlalchemy_url)
    migrate.upgrade(engine)
    engine.dispose()
    app = create_app(settings)
    attach_sandbox(app, SimpleNamespace(url=sim_url, app=sim))
    return app


def seed(sim, n: int) -> None:
    """n tasks of one manager, in PanDA and in the panel (rows written directly: fast)."""
    user = create_local_user("bench", "bench-password-123", role="manager")
    db.session.commit()
    jedi, now = sim.state, sim.clock.now()
    with jedi.lock:
        jedi.db.execute("BEGIN")
        ids = [
            jedi.insert_task(dict(PARAMS, taskName=f"bench.{i}", userName=user.name), user.name, None, now)
            for i in range(n)
        ]
        jedi.db.execute("COMMIT")
    created = clock.now()
    for start in range(0, n, 1000):
        size = min(1000, n - start)
        bunch = TaskBunch(idempotency_key=f"bench-{start}", base_name=f"bench-{start}", step="SIM", size=size,
                          definition={}, comment="", created_by_id=user.id, created_at=created)  # fmt: skip
        db.session.add(bunch)
        db.session.flush()
        tasks = [
            dict(bunch_id=bunch.id, bunch_index=i + 1, name=f"bench.{start + i}", output_dataset=f"bench.ds.{start + i}",
                 step="SIM", production="PROD2026-001", spec={}, params=dict(PARAMS, userName=user.name),
                 panda_task_id=ids[start + i], created_at=created)
            for i in range(size)
        ]  # fmt: skip
        task_ids = db.session.scalars(insert(Task).returning(Task.id), tasks).all()
        db.session.execute(
            insert(Launch),
            [dict(task_id=tid, idempotency_key=f"bench-launch-{tid}", attempt=1, status="submitted", due_at=created,
                  created_by_id=user.id, created_at=created, panda_task_id=tasks[i]["panda_task_id"], error="")
             for i, tid in enumerate(task_ids)],
        )  # fmt: skip
    db.session.commit()


WAITED = [0.0]  # seconds inside PanDA calls: the simulator's work, HTTP and decoding the replies


def _timed_calls() -> None:
    call = PandaClient._call

    def timed(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return call(self, *args, **kwargs)
        finally:
            WAITED[0] += time.perf_counter() - t0

    PandaClient._call = timed  # type: ignore[method-assign]


def cycle(sim, label: str, profile: int = 0) -> None:
    before = sum(sim.calls.values())
    WAITED[0] = 0.0
    profiler = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    report = jobs.sync_cycle()
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - t0
    calls = sum(sim.calls.values()) - before
    print(f"  {label:<34} {calls:>3} calls  {seconds:7.2f} s  = PanDA calls {WAITED[0]:6.2f} s"
          f" + panel {seconds - WAITED[0]:6.2f} s  ({report.seen} tasks seen, {report.updated} updated)")  # fmt: skip
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(profile)
        print(out.getvalue())


def run(n: int, profile: int = 0) -> None:
    print(f"{n} active tasks")
    sim = create_simulator(SimConfig(seed=3, time_scale=0.0))
    running = serve_in_thread(sim)
    try:
        with tempfile.TemporaryDirectory() as folder:
            app = panel(Path(folder), running.url, sim)
            with app.app_context():
                seed(sim, n)
                sim.advance(150)  # picked up, refined, running
                cycle(sim, "cycle 1 (every task new)", profile)
                cycle(sim, "cycle 2 (running: counters too)", profile)
                sim.advance(3600)
                cycle(sim, "cycle 3 (an hour later)", profile)
                flush_call_log(30)
                db.session.remove()
                db.engine.dispose()
    finally:
        running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="print the N costliest functions of each cycle (cProfile)")
    args = parser.parse_args()
    _timed_calls()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for n in (int(x) for x in args.sizes.split(",")):
        run(n, args.profile)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
