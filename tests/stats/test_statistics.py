"""The per-day summary kept by the sync against the simulator over HTTP, the statistics page read
from it, and the error summary of the failed jobs the final accounting read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from app import clock
from app.extensions import db
from app.stats import errors, summary
from app.stats import services as stats
from app.stats.cli import stats as stats_cli
from app.stats.estimate import estimate
from app.stats.models import ALL_DAYS, StatSplit, TaskError, TaskProgress
from app.sync import jobs
from app.tasks.models import Task
from tests.tasks.conftest import form_data, post, sim_definition


def summary_rows() -> dict:
    """The tasks' sums per day, step, status, request and creator (what `stat_day` held), summed here
    from the stored tasks, with their own columns."""
    out: dict = {}
    for t in db.session.scalars(select(Task).where(Task.panda_status.is_not(None))):
        key = ((t.ended_at or t.submitted_at or t.created_at).date(), t.step, t.panda_status,
               t.request_id or 0, t.bunch.created_by_id or 0)  # fmt: skip
        values = (1, t.jobs_done or 0, t.jobs_failed or 0, t.events_processed or 0, t.output_bytes or 0,
                  t.walltime_s or 0, t.jobs_total or 0, t.log_bytes or 0)  # fmt: skip
        old = out.get(key, (0,) * len(values))
        out[key] = tuple(a + b for a, b in zip(old, values, strict=True))
    return out


def split_rows() -> dict:
    rows = db.session.execute(select(StatSplit)).scalars()
    return {
        (r.dimension, r.day, r.key): tuple(getattr(r, v) for v in summary.VALUES)
        for r in rows
        if any(getattr(r, v) for v in summary.VALUES)
    }


def splits_of(day_rows: dict) -> dict:
    """The splits `stat_split` must hold for these per-day rows, summed here independently."""
    out: dict = {}
    for (day, step, status, request, user), values in day_rows.items():
        keys = {"all": "", "step": step, "status": status, "request": str(request), "user": str(user)}
        for dimension, key in keys.items():
            for when in (day, ALL_DAYS):
                old = out.get((dimension, when, key), (0,) * len(values))
                out[(dimension, when, key)] = tuple(a + b for a, b in zip(old, values, strict=True))
    return {k: v for k, v in out.items() if any(v)}


def run_to_the_end(sim, submit, make_user):
    alice, bob = make_user("manager", "alice"), make_user("manager", "bob")
    submit(3, owner=alice, number=8)
    submit(2, owner=bob, number=9, request_id=77)
    sim.advance(150)
    jobs.sync_cycle()
    moving = split_rows()
    assert moving == splits_of(summary_rows())  # the splits of the running tasks
    sim.advance(3300)
    jobs.sync_cycle()
    sim.advance(20000)
    for _ in range(4):  # accounting: a few final tasks per cycle
        jobs.sync_cycle()
    db.session.expire_all()
    return alice, bob, moving


def test_the_summary_follows_every_change_and_equals_a_rebuild(sim, submit, make_user, monkeypatch):
    monkeypatch.setattr(jobs, "APPLY_BATCH", 2)  # a listing of 5 stored in 3 transactions, moves summed per batch
    alice, bob, moving = run_to_the_end(sim, submit, make_user)
    assert moving[("all", ALL_DAYS, "")][0] == 5  # five running tasks were counted while they ran
    tasks = db.session.scalars(select(Task)).all()
    assert all(t.accounted_at is not None for t in tasks)
    per_day, incremental = summary_rows(), split_rows()
    assert sum(v[0] for v in per_day.values()) == 5
    # Every sum the per-day rows by every dimension at once (the dropped `stat_day`) gave, per day and
    # key of each dimension and over every day, the splits give: they followed every move.
    assert incremental == splits_of(per_day)
    assert summary.rebuild() == 5
    assert split_rows() == incremental
    # The totals: "all" over every day, and the sum of its days, are the tasks' own sums.
    columns = ("jobs_done", "jobs_failed", "events_processed", "output_bytes", "walltime_s", "jobs_total", "log_bytes")
    own = (len(tasks), *(sum(getattr(t, c) or 0 for t in tasks) for c in columns))
    assert incremental[("all", ALL_DAYS, "")] == own
    days = [v for (dimension, day, _), v in incremental.items() if dimension == "all" and day != ALL_DAYS]
    assert tuple(map(sum, zip(*days, strict=True))) == own
    assert own[3] > 0 and own[4] > 0  # events and output were accounted
    keys = {dimension: {k for (d, day, k) in incremental if d == dimension and day == ALL_DAYS} for dimension in
            ("user", "request")}  # fmt: skip
    assert keys == {"user": {str(alice.id), str(bob.id)}, "request": {"42", "77"}}
    # Every task's jobs moved at some point, recorded when the sync saw it.
    assert db.session.scalar(select(func.count()).select_from(TaskProgress)) == 5


def successful_totals_agree() -> None:
    """The successful table's totals read from the summary (unfiltered, by status) are the tasks' own
    sums, as the totals summed in SQL over a filter's tasks are."""
    from werkzeug.datastructures import MultiDict

    from app.monitoring.filters import TaskFilter
    from app.monitoring.tables import SUCCESSFUL_TABLE, totals

    tasks = db.session.scalars(select(Task)).all()

    def own(rows: list[Task]) -> dict:
        def summed(column: str) -> int | None:
            return sum(getattr(t, column) or 0 for t in rows) if rows else None

        return {"tasks": len(rows), "walltime": summed("walltime_s"), "events_done": summed("events_processed"),
                "jobs_total": summed("jobs_total"), "output_gb": summed("output_bytes"), "log_gb": summed("log_bytes")}  # fmt: skip

    def without_ratio(found: dict) -> dict:
        return {k: v for k, v in found.items() if k != "events_per_job"}

    for args, statuses in (({}, ("done", "finished")), ({"status": "done"}, ("done",)),
                           ({"status": ["done", "running"], "not": "status"}, ("finished",))):  # fmt: skip
        found = totals(SUCCESSFUL_TABLE, TaskFilter.from_args(MultiDict(args)))
        assert without_ratio(found) == own([t for t in tasks if t.panda_status in statuses]), args
    creator = tasks[0].bunch.created_by
    mine = totals(SUCCESSFUL_TABLE, TaskFilter.from_args(MultiDict({"creator": creator.username})))
    assert without_ratio(mine) == own(
        [t for t in tasks if t.panda_status in ("done", "finished") and t.bunch.created_by_id == creator.id]
    )


def status_counts_agree(cap: int) -> None:
    """The task tables' counts per status, unfiltered (the summary's, and the tasks not in PanDA yet
    counted in their index) or filtered (counted in SQL), are the tasks' own, capped at `cap` + 1."""
    from collections import Counter

    from werkzeug.datastructures import MultiDict

    from app.monitoring.filters import NO_STATUS, TaskFilter
    from app.monitoring.tables import CURRENT, SUCCESSFUL_TABLE, status_counts

    tasks = db.session.scalars(select(Task)).all()

    def own(rows: list[Task]) -> dict:
        return {k: min(n, cap + 1) for k, n in Counter(t.panda_status or NO_STATUS for t in rows).items()}

    for args in ({}, {"status": "running"}, {"status": "done", "not": "status"}):  # the status is left out
        assert dict(status_counts(CURRENT, TaskFilter.from_args(MultiDict(args)))) == own(tasks), args
    successful = [t for t in tasks if t.panda_status in ("done", "finished")]
    assert dict(status_counts(SUCCESSFUL_TABLE, TaskFilter())) == own(successful)
    creator = tasks[0].bunch.created_by
    theirs = status_counts(CURRENT, TaskFilter.from_args(MultiDict({"creator": creator.username})))
    assert dict(theirs) == own([t for t in tasks if t.bunch.created_by_id == creator.id])


def test_the_successful_totals_and_the_status_counts_follow_the_sync(
    sim, submit, make_user, client, login_as, monkeypatch
):
    from app import extensions

    monkeypatch.setattr(extensions, "COUNT_CAP", 2)  # alice's three tasks are "2+"
    alice, bob = make_user("manager", "alice"), make_user("manager", "bob")
    submit(3, owner=alice, number=8)
    submit(2, owner=bob, number=9, request_id=77)
    status_counts_agree(2)  # not in PanDA yet
    sim.advance(150)
    jobs.sync_cycle()
    successful_totals_agree()  # running: none yet
    status_counts_agree(2)
    sim.advance(20000)
    for _ in range(5):  # the tasks end, then their accounting (walltime, log bytes) is read
        jobs.sync_cycle()
        db.session.expire_all()
        successful_totals_agree()
        status_counts_agree(2)
    tasks = db.session.scalars(select(Task)).all()
    done = [t for t in tasks if t.panda_status in ("done", "finished")]
    assert done and all(t.accounted_at is not None for t in tasks) and sum(t.log_bytes or 0 for t in done) > 0
    login_as("viewer")
    row = client.get("/tasks/successful/totals").get_data(as_text=True)
    assert f"Total: {len(done)} tasks" in row and f"{sum(t.walltime_s for t in done) / 3600:.1f} h" in row


def test_the_stats_cli_rebuilds_the_summary(app, sim, submit, make_user):
    run_to_the_end(sim, submit, make_user)
    kept = split_rows()
    db.session.execute(delete(StatSplit))
    db.session.commit()
    result = app.test_cli_runner().invoke(stats_cli, ["rebuild"])
    assert result.exit_code == 0 and result.output == "Summary rebuilt from 5 tasks.\n"
    assert split_rows() == kept


def test_the_statistics_page_shows_the_summary(sim, submit, make_user, client, login_as):
    run_to_the_end(sim, submit, make_user)
    tasks = db.session.scalars(select(Task)).all()
    login_as("viewer")
    page = client.get("/statistics/").get_data(as_text=True)
    jobs_done = sum(t.jobs_done for t in tasks)
    assert f'data-value="{jobs_done}"' in page  # the week's row of the table carries the same total
    assert 'id="weeks-chart"' in page and 'id="weeks-table"' in page and "stats-charts.js" in page
    assert "alice" in page and "bob" in page and "#77" in page
    tomorrow = (clock.now() + timedelta(days=1)).date()
    later = client.get(f"/statistics/?since={tomorrow}").get_data(as_text=True)
    assert f"Since {tomorrow}" in later and "Nothing in this period." in later
    # The page's totals, weeks, months and "since" agree with one another and with the per-day rows.
    page_data = stats.statistics(None)
    assert page_data.total.tasks == 5 and page_data.total.jobs_done == jobs_done
    assert sum((r.totals for r in page_data.weeks), stats.Totals()) == page_data.total
    assert sum((r.totals for r in page_data.months), stats.Totals()) == page_data.total
    for rows in page_data.splits.values():
        assert sum((r.totals for r in rows), stats.Totals()) == page_data.total
    first_day = min(day for day, *_ in summary_rows())
    since = stats.statistics(first_day)
    assert since.since_total == since.total == page_data.total and since.splits == page_data.splits
    later_days = {k: v for k, v in summary_rows().items() if k[0] > first_day}
    after = stats.statistics(first_day + timedelta(days=1))
    assert after.since_total is not None and after.since_total.tasks == sum(v[0] for v in later_days.values())
    bad = client.get("/statistics/?since=2024-13-45")
    assert bad.status_code == 400 and "is not a date" in bad.get_data(as_text=True)


def test_failed_jobs_are_grouped_by_normalised_error_with_the_memory_retry(
    sim, submit, make_user, client, login_as
):
    run_to_the_end(sim, submit, make_user)
    tasks = db.session.scalars(select(Task)).all()
    failed = sum(t.jobs_failed or 0 for t in tasks)
    assert failed > 0
    stored = db.session.scalars(select(TaskError)).all()
    assert sum(e.jobs for e in stored) >= failed  # every failed attempt is described (retries too)
    groups = errors.error_groups(errors.Scope())
    assert sum(g.jobs for g in groups) == sum(e.jobs for e in stored)
    assert len(groups) < len({e.example for e in stored})  # texts differ, normalised messages group them
    assert all("<n>" in g.message or "<host>" in g.message or "<path>" in g.message for g in groups)
    memory = [g for g in groups if g.memory]
    assert memory and all(t.retry_memory_mb == 3000 for g in memory for t in g.affected)  # 2000 MB * 1.5
    one = tasks[0]
    mine = errors.error_groups(errors.Scope(task_id=one.id))
    assert sum(g.jobs for g in mine) == sum(e.jobs for e in stored if e.task_id == one.id)

    login_as("manager")
    page = client.get("/statistics/errors").get_data(as_text=True)
    assert "retry with 3000 MB" in page and "/actions/retry?memory_mb=3000" in page
    assert client.get("/statistics/errors?bunch=x").status_code == 400
    failing = next(t for t in tasks if t.jobs_failed)
    assert f"/statistics/errors?task={failing.id}" in client.get(f"/tasks/{failing.id}").get_data(as_text=True)


def test_normalisation_of_real_looking_pilot_texts():
    a = errors.normalise(
        "Failed to stage-out file spd.mc.x.root: connection to root://se01.jinr.ru:1094//spd/a/b timed out"
    )
    b = errors.normalise(
        "Failed to stage-out file spd.mc.y.root: connection to root://se02.jinr.ru:1094//spd/c/d timed out"
    )
    assert a == b
    assert errors.normalise(
        "Payload ran out of memory: maxRSS 2300000 kB exceeds the limit of 2048000 kB on wn-012.jinr.ru"
    ) == ("Payload ran out of memory: maxRSS <n> kB exceeds the limit of <n> kB on <host>")
    assert errors.normalise("Segmentation violation at address 0x7f3a2b4c10 in event 12") == (
        "Segmentation violation at address <hex> in event <n>"
    )
    assert errors.is_memory("pilot", 1212, "") and errors.is_memory("exe", 134, "std::bad_alloc")
    assert not errors.is_memory("pilot", 1137, "Failed to stage-out file <host>")


def test_the_preview_estimates_from_finished_tasks_with_the_same_tag_and_step(
    sim, submit, make_user, client, login_as
):
    run_to_the_end(sim, submit, make_user)
    tasks = db.session.scalars(select(Task)).all()
    definition = sim_definition(number=12, bunch_size=3, total_events=20000)
    guess = estimate(definition)
    per_event = sum(t.walltime_s for t in tasks) / sum(t.events_processed for t in tasks)
    assert guess.history == 5 and guess.step == "SIM"
    assert guess.cpu_hours == pytest.approx(per_event * 60000 / 3600)
    assert guess.output_bytes == pytest.approx(
        sum(t.output_bytes for t in tasks) / sum(t.events_processed for t in tasks) * 60000, rel=1e-6
    )
    assert guess.duration is not None and guess.duration.total_seconds() > 0
    assert estimate(sim_definition(number=12, step="RECO")).history == 0  # another step: no history

    login_as("manager")
    html = post(client, "/tasks/preview", form_data(definition, key="est")).get_data(as_text=True)
    assert 'id="estimate"' in html and f"{guess.cpu_hours:,.0f}" in html and "5 most recent" in html
    other_tag = "dy-P8-spdroot417-dev.27GeV"
    other = sim_definition(number=13, exec_path=f"/cvmfs/spd.jinr.ru/production/MC/{other_tag}.V01",
                           output_dataset=f"MC2025_S1.{other_tag}.PROD2025-013.SIM.1")  # fmt: skip
    html = post(client, "/tasks/preview", form_data(other, key="e2")).get_data(as_text=True)
    assert 'id="estimate-none">no history' in html and other_tag in html
