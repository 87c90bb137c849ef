"""Bulk actions against the PanDA simulator over real HTTP, through the pages: 50 running tasks and 5
done ones, the simulator failing 20 % of the kill commands. The matrix keeps the done ones back before
anything is sent; each task's result says what PanDA did with it (checked against the simulator);
"retry the failed ones" sends only those again until every one is accepted."""

from __future__ import annotations

import re
from collections import Counter
from html import unescape

import pytest
from sqlalchemy import select

from app.actions import jobs
from app.actions.models import BulkAction, BulkItem, Outcome, TaskCommand
from app.extensions import db as _db
from app.extensions import panda_clients
from app.panda.calllog import flush_call_log
from app.tasks import services as task_services
from app.tasks.models import Task, TaskBunch
from pandasim import Faults
from tests.actions.conftest import post
from tests.helpers import bunch_counts, settle_launches
from tests.tasks.conftest import form_values, sim_definition


@pytest.fixture
def app(sim_panel):
    return sim_panel


def bunch_of(owner, sim, number: int, size: int, advance: float) -> list[Task]:
    bunch, _, _ = task_services.create_bunch(
        sim_definition(number=number, bunch_size=size), owner, f"bulk-{number}", is_admin=False
    )
    _db.session.commit()
    assert settle_launches(120) and bunch_counts(bunch.id) == {"submitted": size}
    sim.advance(advance)
    return list(_db.session.get(TaskBunch, bunch.id).tasks)


def statuses(owner, tasks: list[Task]) -> dict[int, str]:
    """Each task's status as the simulator says it now (not through the panel)."""
    client = panda_clients()
    try:
        return {t.id: client.get_detailed_info(owner, t.panda_task_id).status for t in tasks}
    finally:
        client.close()


def store(owner, tasks: list[Task]) -> None:
    """What the sync would have stored: the simulator's status of each task."""
    for task_id, status in statuses(owner, tasks).items():
        _db.session.get(Task, task_id).panda_status = status
    _db.session.commit()


def items_of(bulk_id: int) -> dict[int, BulkItem]:
    _db.session.expire_all()
    return {i.task_id: i for i in _db.session.scalars(select(BulkItem).where(BulkItem.bulk_id == bulk_id))}


def confirm_and_start(client, data: dict) -> int:
    """The confirmation page for `data`, then its form sent with a comment; returns the bulk id."""
    page = post(client, "/actions/bulk/confirm", data)
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    html = page.get_data(as_text=True)
    values = form_values(html, "bulk-confirm-form")
    values["comment"] = values.get("comment") or "stop the 10 GeV minbias: wrong generator tune"
    started = post(client, "/actions/bulk", {k: v for k, v in values.items() if k != "task_id"}
                   | {"task_id": [v for v in _ids(html)]})  # fmt: skip
    assert started.status_code == 302, started.get_data(as_text=True)[:500]
    return int(started.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def text(response) -> str:
    """The page's text as a reader sees it: no tags, entities decoded, spaces collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def _ids(html: str) -> list[str]:
    form = html[html.index('id="bulk-confirm-form"') :]
    form = form[: form.index("</form>")]
    return re.findall(r'name="task_id" value="(\d+)"', form)


@pytest.mark.usefixtures("app")
def test_bulk_kill_of_50_tasks_with_20_percent_failing_commands(client, login_as, sim):
    manager = login_as("manager")
    done = bunch_of(manager, sim, 41, 5, advance=20_000)
    running = bunch_of(manager, sim, 40, 50, advance=150)
    store(manager, done + running)
    assert {t.panda_status for t in done} == {"done"} and {t.panda_status for t in running} == {"running"}
    sim.set_faults(Faults(error_rate=0.2, methods=["kill"]))

    selection = {"scope": "ids", "action": "kill", "task_id": [str(t.id) for t in running + done]}
    page = text(post(client, "/actions/bulk/confirm", selection))
    assert "This will send kill to PanDA for 50 task(s)" in page
    assert "kill: not possible while done — 5 task(s)" in page
    bulk_id = confirm_and_start(client, selection)
    assert Counter(i.outcome for i in items_of(bulk_id).values()) == {Outcome.PENDING: 50, Outcome.NOT_ALLOWED: 5}

    assert jobs.run_bulk_actions() == 50
    results = items_of(bulk_id)
    counts = Counter(i.outcome for i in results.values())
    failed = counts[Outcome.FAILED] + counts[Outcome.UNKNOWN]
    assert counts[Outcome.NOT_ALLOWED] == 5 and counts[Outcome.ACCEPTED] + failed == 50
    assert 4 <= failed <= 18, counts  # about 20 % of 50, drawn by the simulator's seed
    assert counts[Outcome.FAILED] and counts[Outcome.UNKNOWN]  # "database error" and HTTP 500
    # Each result is true: the accepted ones are queued in PanDA, the failed ones are not.
    sim.advance(60)
    now = statuses(manager, running)
    for task in running:
        item = results[task.id]
        assert now[task.id] == ("toabort" if item.outcome == Outcome.ACCEPTED else "running"), (item.outcome, item.reason)
        if item.outcome == Outcome.FAILED:
            assert item.reason.startswith("Nothing was registered")
        if item.outcome == Outcome.UNKNOWN:
            assert "may have registered" in item.reason
    progress = text(client.get(f"/actions/bulk/{bulk_id}"))
    assert f"Retry the failed ones ({failed})" in progress and "finished" in progress

    # "Retry the failed ones" until every task's kill is accepted (the faults stay on).
    rounds, previous = 0, bulk_id
    while True:
        rounds += 1
        assert rounds <= 8, "the failed ones never completed"
        retry = post(client, f"/actions/bulk/{previous}/retry")
        assert retry.status_code == 200
        retry_html = retry.get_data(as_text=True)
        left = len(_ids(retry_html))
        assert left == sum(1 for i in items_of(previous).values() if i.outcome in (Outcome.FAILED, Outcome.UNKNOWN))
        values = form_values(retry_html, "bulk-confirm-form")
        assert values["retry_of"] == str(previous) and values["comment"].startswith("stop the 10 GeV")
        started = post(client, "/actions/bulk", values | {"task_id": _ids(retry_html)})
        previous = int(started.headers["Location"].rsplit("/", 1)[1])
        jobs.run_bulk_actions()
        if all(i.outcome == Outcome.ACCEPTED for i in items_of(previous).values()):
            break
    sim.advance(60)
    assert set(statuses(manager, running).values()) <= {"toabort", "aborted"}  # every one killed
    # One accepted kill per task, each with the comment, in the panel's history and the PanDA log.
    accepted = _db.session.scalars(select(TaskCommand).where(TaskCommand.outcome == Outcome.ACCEPTED)).all()
    assert sorted(c.task_id for c in accepted) == sorted(t.id for t in running)
    assert {c.comment for c in accepted} == {"stop the 10 GeV minbias: wrong generator tune"}
    assert _db.session.get(BulkAction, previous).retry_of_id is not None
    flush_call_log(10)


@pytest.mark.usefixtures("app")
def test_select_all_matching_the_filter_and_act_on_a_bunch(client, login_as, sim):
    manager = login_as("manager")
    tasks = bunch_of(manager, sim, 42, 3, advance=150)
    other = bunch_of(manager, sim, 43, 2, advance=0)
    store(manager, tasks)  # the other bunch is not read from PanDA yet
    listing = client.get("/tasks/?q=PROD2025-042").get_data(as_text=True)
    assert "all 3 matching this filter" in listing
    page = post(client, "/actions/bulk/confirm", {"scope": "filter", "q": "PROD2025-042", "action": "pause"})
    assert "to PanDA for 3 task(s)" in text(page)
    page = post(client, "/actions/bulk/confirm", {"scope": "bunch", "target_id": str(other[0].bunch_id), "action": "pause"})
    assert "2 task(s) are not allowed" in text(page)  # not read from PanDA yet
    page = post(client, "/actions/bulk/confirm", {"scope": "request", "target_id": "42", "action": "pause"})
    assert "to PanDA for 3 task(s)" in text(page) and "2 task(s) are not allowed" in text(page)  # request 42's five
    empty = post(client, "/actions/bulk/confirm", {"scope": "ids", "action": "pause"})
    assert empty.status_code == 302  # back with "Nothing to act on: tick at least one task."
