"""Benchmark: SIGKILL trials — the panel killed between sending submits and storing their replies
during a 50-task bunch, at a random point, then restarted; prints duplicates and lost tasks per trial.

Each trial: a fresh panel instance (SQLite) and simulator (served over HTTP on loopback, the panel's
configured PanDA; its issuer signs the owner's linked token); a bunch of `--tasks`; `prodpanel serve`
(its scheduler's dispatch job, tests/launches/serving.py starts it) sends it; after a random number k
of tasks reached PanDA, PanDA starts storing each submit and holding its reply, and once the submits
in flight are stored the panel is SIGKILLed. A second `prodpanel serve` then finishes the bunch and
is stopped (SIGTERM) once no launch is left pending, sending or unknown. Counted from the simulator's own table: duplicates (a name stored twice) and
lost tasks (a name never stored), and the panel's launches left for a manager's decision.

With `--anywhere` the kill comes at a random moment instead (possibly before a claimed submit left):
such a submit can only be proven absent by a task sent after it, so the last ones of a bunch may be
left for a manager ("needs decision") rather than guessed.

Usage: .venv/bin/python benchmarks/kill_trials.py [--trials 20] [--tasks 50] [--seed 1] [--anywhere]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app import create_app, migrate
from app.auth.services import create_local_user
from app.config import load_settings
from app.extensions import db
from app.launches.models import Launch
from app.tasks import services
from pandasim import Faults, SimConfig, Timings, create_simulator, serve_in_thread

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from launch import definition  # noqa: E402 (the benchmarks' task definition)

from tests.launches import serving  # noqa: E402 (starts `prodpanel serve` on an instance folder)

PANDA = {"read_timeout_s": 1.0, "connect_timeout_s": 0.5, "retries": 0, "retry_backoff_s": 0.05}
TASKS = {"reconcile_grace_s": 30.0}
OPEN = ("pending", "sending", "unknown")


def stored(sim) -> Counter[str]:
    return Counter(row[0] for row in sim.state.select_rows("SELECT taskName FROM tasks", ()))


def wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)  # polling interval
    return True


def open_launches(engine) -> int:
    with Session(engine) as session:
        return len(session.scalars(select(Launch.id).where(Launch.status.in_(OPEN))).all())


def trial(rng: random.Random, n: int, anywhere: bool) -> tuple[int, int, int, int, str]:
    """One kill and restart; returns (k, duplicates, lost, needs decision, note)."""
    config = SimConfig(seed=rng.randrange(1000), time_scale=600.0, timings=Timings(pickup_s=60.0))
    running = serve_in_thread(create_simulator(config))
    sim = running.app
    try:
        with tempfile.TemporaryDirectory() as folder:
            instance = Path(folder) / "instance"
            instance.mkdir(mode=0o700)
            serving.write_config(instance, running.url, panda=PANDA, tasks=TASKS)
            settings = load_settings(instance, env={})
            engine = create_engine(settings.sqlalchemy_url)
            migrate.upgrade(engine)
            app = create_app(settings)
            with app.app_context():
                user = create_local_user("trial", "trial-password-123", role="manager")
                serving.link_token(user, sim)
                names = [t.name for t in services.create_bunch(definition(1, n), user, "t", is_admin=False)[0].tasks]
                db.session.commit()
                db.session.remove()
                db.engine.dispose()
            k = rng.randrange(1, n - 4)
            first = serving.serve(instance, "first")
            note = ""
            wait(lambda: sum(stored(sim).values()) >= k, 60)
            if anywhere:
                time.sleep(rng.random() * 0.2)  # a random moment, not a wait for a state
            else:
                sim.set_faults(Faults(submit_timeout_rate=1.0, stall_s=30.0, methods=["submit"]))
                before = sum(stored(sim).values())
                if not wait(lambda: sum(stored(sim).values()) >= min(before + 4, n), 10):
                    note = "fewer than 4 in flight"
            serving.stop(first, kill=True)
            sim.set_faults(Faults())
            second = serving.serve(instance, "second")
            if not wait(lambda: open_launches(engine) == 0, 150):
                note += " the restarted panel left launches open"
            serving.stop(second)
            with Session(engine) as session:
                undecided = session.scalars(select(Launch).where(Launch.status == "needs_decision")).all()
                open_ = len(undecided)
                if undecided:
                    note += f" first undecided: {undecided[0].error[:300]}"
            engine.dispose()
            counts = stored(sim)
            duplicates = sum(c - 1 for c in counts.values() if c > 1)
            lost = sum(1 for name in names if counts[name] == 0)
            return k, duplicates, lost, int(open_ or 0), note
    finally:
        running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--anywhere", action="store_true", help="kill at a random moment, not mid-submit")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    totals = Counter()
    print(f"{args.trials} trials, {args.tasks}-task bunch, kill {'anywhere' if args.anywhere else 'between submit and reply'}")
    for i in range(1, args.trials + 1):
        t0 = time.perf_counter()
        k, duplicates, lost, undecided, note = trial(rng, args.tasks, args.anywhere)
        totals.update(duplicates=duplicates, lost=lost, undecided=undecided)
        print(f"  trial {i:>2}: killed after {k:>2} stored  duplicates {duplicates}  lost {lost}  "
              f"needs decision {undecided}  ({time.perf_counter() - t0:4.1f} s) {note}")  # fmt: skip
    print(f"total: {totals['duplicates']} duplicates, {totals['lost']} lost, "
          f"{totals['undecided']} left for a manager's decision, of {args.trials * args.tasks} tasks")  # fmt: skip


if __name__ == "__main__":
    main()
