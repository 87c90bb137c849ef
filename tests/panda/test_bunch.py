"""Proof: a bunch of 100 tasks goes through the client into the simulator with faults injected
(HTTP 500, success:false, connection resets, submits stalled after commit, latency), every task
ends in a final state exactly once, neither side crashes, and the interaction log has every call."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.panda.calllog import db_recorder, flush_call_log
from app.panda.client import CallRecord, ClientConfig, PandaClient
from app.panda.errors import PandaError, PandaNotFound, PandaOutcomeUnknown, PandaUnavailable
from app.panda.models import PandaCall
from pandasim import SimConfig, create_simulator, serve_in_thread
from tests.fakes.tokens import FixedTokens
from tests.panda.test_contract import task_params

N_TASKS = 100
FINAL = {"done", "finished", "failed", "broken", "aborted"}


@pytest.mark.parametrize("transport", ["v1", "legacy"])
def test_hundred_task_bunch_with_faults(app, db, make_user, transport):
    version = "0.8" if transport == "legacy" else "1.0"
    sim = create_simulator(SimConfig(seed=5, time_scale=0, job_failure_rate=0.05, version=version))
    running = serve_in_thread(sim)
    user = make_user("manager")
    seen: list[CallRecord] = []
    writer = db_recorder(db.engine)

    def recorder(record: CallRecord) -> None:
        seen.append(record)
        writer(record)

    client = PandaClient(
        ClientConfig(
            url=running.url,
            transport=transport,
            read_timeout_s=0.4,
            connect_timeout_s=1.0,
            retries=2,
            retry_backoff_s=0.0,
        ),
        FixedTokens(sim.mint_token("alice", "Alice Manager", ["spd", "spd/production"])),
        recorder=recorder,
    )
    try:
        start = sim.clock.now_dt() - timedelta(minutes=1)
        sim.set_faults(
            {
                "latency_ms": 1,
                "error_rate": 0.08,
                "reset_rate": 0.04,
                "submit_timeout_rate": 0.05,
                "stall_s": 0.6,
            }
        )
        names = [f"spd.mc.bunch.{transport}.{i:03d}" for i in range(N_TASKS)]
        task_ids: dict[str, int] = {}
        unknown: set[str] = set()
        confirmed: set[str] = set()  # task id from a successful submit reply
        reconciled: set[str] = set()  # outcome unknown, then found by name

        def submit(name: str) -> None:
            for _ in range(20):  # PandaUnavailable: nothing was stored, resubmitting is safe
                try:
                    task_ids[name] = client.submit(user, task_params(name, n_events=500, per_job=100)).task_id
                    confirmed.add(name)
                    return
                except PandaOutcomeUnknown:
                    unknown.add(name)  # never resend blindly: reconcile by name below
                    return
                except PandaUnavailable:
                    continue
            raise AssertionError(f"{name}: PanDA unavailable 20 times in a row")

        for name in names:
            submit(name)
        assert unknown, "the fault mix should have produced at least one unknown outcome"
        n_unknown = len(unknown)

        # Reconcile unknown outcomes by task name once JEDI has picked the tasks up; a name PanDA does
        # not have is provably not stored and may be submitted again (which may again end unknown).
        for _round in range(10):
            pending = sorted(unknown - set(task_ids))
            if not pending:
                break
            sim.advance(sim.config.timings.pickup_s + sim.config.timings.refine_s + 1)
            listed = None
            for _ in range(20):
                try:
                    listed = client.get_tasks_modified_since(
                        user, start, dn="spd_prod", prod_source_label="managed"
                    )
                    break
                except (PandaUnavailable, PandaOutcomeUnknown):
                    continue
            assert listed is not None
            by_name = {t.name: t.task_id for t in listed}
            for name in pending:
                if name in by_name:
                    task_ids[name] = by_name[name]
                    reconciled.add(name)
                else:
                    unknown.discard(name)
                    submit(name)
        sim.advance(sim.config.timings.pickup_s + sim.config.timings.refine_s + 1)
        assert set(task_ids) == set(names)

        # Follow every task to a final state, tolerating faults on the way.
        status: dict[str, str] = {}
        for _round in range(60):
            for name in names:
                if status.get(name) in FINAL:
                    continue
                try:
                    status[name] = client.get_status(user, task_ids[name])
                except (PandaUnavailable, PandaNotFound):
                    continue
            if all(status.get(n) in FINAL for n in names):
                break
            sim.advance(1800)
        assert all(status.get(n) in FINAL for n in names), {
            n: status.get(n) for n in names if status.get(n) not in FINAL
        }

        # Exactly one PanDA task per name: nothing was submitted twice.
        sim.set_faults({})
        everything = client.get_tasks_modified_since(user, start, dn="spd_prod", prod_source_label="managed")
        mine = [t for t in everything if t.name.startswith(f"spd.mc.bunch.{transport}.")]
        assert sorted(t.name for t in mine) == sorted(names)
        assert client.is_alive().alive  # the simulator survived
    except PandaError as exc:  # pragma: no cover - a diagnostic, the assertions above are the test
        raise AssertionError(f"unexpected PanDA error: {exc!r}") from exc
    finally:
        client.close()
        running.stop()

    # The interaction log has every exchange the client made, faults included.
    assert flush_call_log(30)
    stored = db.session.scalar(
        select(func.count()).select_from(PandaCall).where(PandaCall.server == running.url)
    )
    assert stored == len(seen)
    outcomes = dict(
        db.session.execute(
            select(PandaCall.outcome, func.count())
            .where(PandaCall.server == running.url)
            .group_by(PandaCall.outcome)
        ).all()
    )
    assert outcomes.get("unknown", 0) >= n_unknown and outcomes.get("unavailable", 0) > 0
    ok_submits = db.session.scalar(
        select(func.count())
        .select_from(PandaCall)
        .where(PandaCall.server == running.url, PandaCall.method == "submit", PandaCall.outcome == "ok")
    )
    assert ok_submits == len(confirmed) and len(confirmed) + len(reconciled) == N_TASKS
