"""Benchmark: the panel's sync calls against the simulator holding 1 000 vs 100 000 tasks.

Prints the median time of get_tasks_modified_since / get_tasks_detailed_info_since (the panel's
incremental sync: few recently modified tasks among many old ones), get_status and a submit, over
real HTTP on loopback. Usage: .venv/bin/python benchmarks/sim_tasks_since.py [--sizes 1000,100000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime

import requests

from pandasim import SimConfig, create_simulator, serve_in_thread
from pandasim.jedi import fmt_dt

PARAMS = {
    "vo": "spd", "prodSourceLabel": "managed", "taskType": "prod", "processingType": "simul", "userName": "spd_prod",
    "taskPriority": 900, "architecture": "", "transUses": "", "transHome": "", "transPath": "/cvmfs/run.sh",
    "noInput": True, "nEvents": 100000, "nEventsPerJob": 1000, "skipScout": True,
    "log": {"type": "template", "param_type": "log", "dataset": "bench.log", "value": "bench.log.${SN}.tgz"},
    "jobParameters": [{"type": "template", "param_type": "output", "dataset": "bench.root", "value": "--out bench.${SN/P}.root"}],
}  # fmt: skip


def seed_history(sim, n: int) -> None:
    """n tasks that ended during the last 20 days (inserted, then rewritten as final rows)."""
    jedi = sim.state
    now = sim.clock.now()
    t0 = time.perf_counter()
    with jedi.lock:
        jedi.db.execute("BEGIN")
        for i in range(n):
            params = dict(PARAMS, taskName=f"spd.mc.history.{i}", reqID=1000 + i // 10)
            jedi.insert_task(params, "spd_prod", None, now)
        # history: final, in JEDI, modified at some point of the last 20 days, nothing due
        rows = jedi.db.execute("SELECT jediTaskID, spec, sim FROM tasks").fetchall()
        updates = []
        for task_id, spec_json, sim_json in rows:
            spec, state = json.loads(spec_json), json.loads(sim_json)
            modified = fmt_dt(now - 60 - (task_id * 7919 % (20 * 86400)))
            spec.update(status="done", modificationTime=modified, endTime=modified, superStatus="done")
            state.update(phase=None, due=None, n_jobs=100, n_ok=100)
            updates.append((json.dumps(spec), json.dumps(state), modified, task_id))
        jedi.db.executemany(
            "UPDATE tasks SET in_jedi=1, status='done', due_at=NULL, spec=?, sim=?, modificationTime=? WHERE jediTaskID=?",
            updates,
        )
        jedi.db.execute("COMMIT")
    print(f"  seeded {n} tasks in {time.perf_counter() - t0:.1f} s")


def timed(fn, repeat: int = 15) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def measure(n: int) -> dict[str, float]:
    sim = create_simulator(SimConfig(seed=1, time_scale=0))
    running = serve_in_thread(sim)
    try:
        seed_history(sim, n)
        token = sim.mint_token("pm", "bench manager", ["spd", "spd/production"])
        headers = {
            "Authorization": f"Bearer {token}",
            "Origin": "spd.production",
            "Accept": "application/json",
        }
        since = datetime.fromtimestamp(sim.clock.now(), UTC).strftime("%Y-%m-%d %H:%M:%S")
        api = f"{running.url}/api/v1"
        for i in range(20):  # the active work the panel is following
            body = {"task_parameters": dict(PARAMS, taskName=f"spd.mc.active.{i}", reqID=99)}
            assert requests.post(f"{api}/task/submit", json=body, headers=headers, timeout=30).json()[
                "success"
            ]
        sim.advance(200)
        one_task = n + 1

        def modified_since():
            r = requests.get(f"{api}/task/get_tasks_modified_since", params={"since": since, "dn": "spd_prod", "prod_source_label": "managed"}, headers=headers, timeout=60)  # fmt: skip
            assert len(r.json()["data"]) == 1  # the 20 active tasks share reqID 99

        def detailed_since():
            r = requests.get(f"{api}/task/get_tasks_detailed_info_since", params={"since": since, "filters": '{"userName": "spd_prod"}'}, headers=headers, timeout=60)  # fmt: skip
            assert len(r.json()["data"]) == 20

        def status():
            assert requests.get(
                f"{api}/task/get_status", params={"task_id": one_task}, headers=headers, timeout=30
            ).json()["success"]

        counter = iter(range(10**6))

        def submit():
            body = {"task_parameters": dict(PARAMS, taskName=f"spd.mc.bench.{next(counter)}")}
            assert requests.post(f"{api}/task/submit", json=body, headers=headers, timeout=30).json()[
                "success"
            ]

        return {
            "tasks_modified_since": timed(modified_since),
            "tasks_detailed_info_since": timed(detailed_since),
            "get_status": timed(status),
            "submit": timed(submit),
        }
    finally:
        running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    results = {}
    for n in sizes:
        print(f"simulator with {n} tasks:")
        results[n] = measure(n)
    print()
    print(f"{'median ms per call':32}" + "".join(f"{n:>14,}" for n in sizes))
    for call in results[sizes[0]]:
        print(f"{call:32}" + "".join(f"{results[n][call]:14.1f}" for n in sizes))


if __name__ == "__main__":
    main()
