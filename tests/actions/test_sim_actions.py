"""Each task action against the PanDA simulator over real HTTP, through the panel's services: the task
reaches the PanDA status the command leads to (read back by the sync), the panel says "command queued"
until then, two quick commands end with the newer one only, and a retry PanDA rejects through `data`
(with success: true) shows as rejected with PanDA's reason."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.actions import modify, services
from app.actions.models import Outcome, TaskCommand
from app.audit.models import AuditEvent
from app.extensions import db as _db
from app.extensions import panda_clients
from app.panda.calllog import flush_call_log
from app.panda.models import PandaCall
from app.sync.models import TaskStatusChange
from app.sync.services import refresh_task
from app.tasks import services as task_services
from app.tasks.models import Task
from tests.helpers import bunch_counts, settle_launches
from tests.tasks.conftest import sim_definition

pytestmark = pytest.mark.usefixtures("app")


@pytest.fixture
def app(sim_panel):
    return sim_panel


@pytest.fixture
def manager(make_user):
    return make_user("manager")


@pytest.fixture
def admin(make_user):
    return make_user("admin")


def launched(owner, number: int, sim, *, advance: float = 150, **changes) -> Task:
    """A task submitted to the simulator by `owner`, the simulator moved on `advance` s, read back."""
    definition = sim_definition(number=number, **changes)
    bunch, _, _ = task_services.create_bunch(definition, owner, f"act-sim-{number}", is_admin=False)
    _db.session.commit()
    assert settle_launches() and bunch_counts(bunch.id) == {"submitted": 1}
    _db.session.expire_all()
    task = _db.session.get(Task, bunch.tasks[0].id)
    sim.advance(advance)
    return read(task)


def read(task: Task) -> Task:
    """What the sync stores about the task now (its owner's token)."""
    client = panda_clients()
    try:
        refresh_task(task, client)
    finally:
        client.close()
    _db.session.commit()
    return task


def act(task: Task, action: str, user, comment: str = "test", **params) -> TaskCommand:
    command = services.act_on_task(task, action, params, user, comment)
    _db.session.commit()
    return command


def test_kill_is_queued_until_the_synced_status_shows_it(sim, manager):
    task = launched(manager, 10, sim)
    assert task.panda_status == "running"
    command = act(task, "kill", manager, comment="wrong generator")
    assert command.outcome == Outcome.ACCEPTED and command.panda_code == 0
    assert "registered" in command.message
    queued = services.queued_command(task)
    assert queued is not None and queued.command.id == command.id  # "command queued: kill (by …, at …)"
    sim.advance(60)
    read(task)
    assert task.panda_status == "toabort"
    assert services.queued_command(task) is None  # the synced status reflects it
    sim.advance(30)
    assert read(task).panda_status == "aborted"
    # The PanDA log and the audit trail have the comment.
    flush_call_log(10)
    call = _db.session.scalars(select(PandaCall).where(PandaCall.method == "kill")).one()
    assert call.comment == "wrong generator" and call.return_code == 0
    audit = _db.session.scalars(select(AuditEvent).where(AuditEvent.action == "task.kill")).one()
    assert audit.details["comment"] == "wrong generator" and audit.outcome == "accepted"
    assert audit.username == manager.username


def test_finish_soft(sim, manager):
    task = launched(manager, 11, sim, total_events=2000)
    assert act(task, "finish", manager, soft=True).outcome == Outcome.ACCEPTED
    sim.advance(60)
    assert read(task).panda_status == "passed"
    sim.advance(10_000)
    assert read(task).panda_status in ("done", "finished")


def test_pause_then_resume(sim, manager):
    task = launched(manager, 12, sim, total_events=100_000)
    act(task, "pause", manager)
    sim.advance(60)
    assert read(task).panda_status == "paused"
    assert not services.verdict(task, "pause", manager)  # the matrix follows the synced status
    act(task, "resume", manager)
    assert services.queued_command(task).command.action == "resume"
    sim.advance(60)
    assert read(task).panda_status == "running"
    assert services.queued_command(task) is None


def test_two_quick_commands_end_with_the_newer_one_only(sim, manager):
    task = launched(manager, 13, sim, total_events=100_000)
    pause = act(task, "pause", manager)
    kill = act(task, "kill", manager)
    _db.session.refresh(pause)
    assert pause.superseded_by_id == kill.id  # the page says it replaced the pause
    assert [c.command.action for c in [services.queued_command(task)]] == ["kill"]
    assert [r.id for r in services.queued_command(task).replaced] == [pause.id]
    sim.advance(60)
    assert read(task).panda_status == "toabort"
    sim.advance(30)
    read(task)
    history = _db.session.scalars(
        select(TaskStatusChange.status).where(TaskStatusChange.task_id == task.id)
    ).all()
    assert "paused" not in history and task.panda_status == "aborted"


def test_retry_of_a_failed_task_and_a_retry_panda_rejects_through_data(sim, manager):
    task = launched(manager, 90, sim, advance=20_000)
    assert task.panda_status == "failed"
    first = act(task, "retry", manager)
    assert first.outcome == Outcome.ACCEPTED
    sim.advance(60)  # JEDI executed it: toretry; the panel has not read it yet (stored: failed)
    assert task.panda_status == "failed" and services.verdict(task, "retry", manager)
    second = act(task, "retry", manager)
    assert second.outcome == Outcome.REJECTED and second.panda_code == 4
    assert (
        "Command rejected: the retry command is not accepted if the task is in toretry status"
        in second.message
    )
    note = services.notice(second)
    assert note.category == "danger" and "PanDA refused the retry" in note.message
    sim.advance(60)
    assert read(task).panda_status not in ("failed", "toretry")


def test_retry_with_more_memory_follows_the_task_panda_registers(sim, manager):
    task = launched(manager, 91, sim, advance=20_000)
    old_id = task.panda_task_id
    command = act(task, "retry", manager, memory_mb=4000)
    assert command.outcome == Outcome.ACCEPTED and command.params == {"memory_mb": 4000}
    assert task.panda_task_id != old_id and f"now follows PanDA task {task.panda_task_id}" in command.message
    sim.advance(200)
    read(task)
    info = panda_clients().get_detailed_info(manager, task.panda_task_id)
    assert info.raw["ramCount"] == 4000 and task.panda_status is not None


def test_retry_refused_for_broken_and_allowed_for_exhausted(sim, manager):
    broken = launched(manager, 70, sim, advance=20_000)
    assert broken.panda_status == "broken"
    with pytest.raises(services.ActionRefused, match="retry: not possible while broken"):
        act(broken, "retry", manager)
    exhausted = launched(manager, 80, sim, advance=20_000)
    assert exhausted.panda_status == "exhausted"
    assert act(exhausted, "retry", manager).outcome == Outcome.ACCEPTED


def test_priority_reassign_attempts_release_by_an_admin(sim, manager, admin):
    task = launched(manager, 14, sim, total_events=100_000)
    assert act(task, "priority", admin, priority=777).outcome == Outcome.ACCEPTED
    assert read(task).priority_current == 777
    increase = act(task, "increase_attempts", admin, increase=2)
    assert increase.outcome == Outcome.ACCEPTED and "increased attemptNr" in increase.message
    assert act(task, "release", admin).outcome == Outcome.ACCEPTED
    reassign = act(task, "reassign", admin, cloud="RU")
    assert reassign.outcome == Outcome.ACCEPTED
    sim.advance(60)
    assert read(task).panda_status == "toreassign"
    sim.advance(60)
    assert read(task).panda_status == "running" and task.cloud == "RU"
    with pytest.raises(services.ActionRefused, match="reassign: needs the admin role"):
        act(task, "reassign", manager, cloud="RU")


def test_avalanche_from_scouting(sim, admin):
    task = launched(admin, 15, sim, skip_scout=False, total_events=100_000)
    assert task.panda_status == "scouting"
    act(task, "avalanche", admin, comment="scouts look fine")
    sim.advance(60)
    assert read(task).panda_status == "running"


def test_modify_memory_walltime_and_split_rule(sim, manager):
    task = launched(manager, 16, sim, total_events=100_000)
    values = {
        "memory_mb": "2500",
        "walltime_s": "7200",
        "split_rule": "NF",
        "split_value": "2",
        "comment": "OOM",
    }
    changes = modify.plan_changes(task, values, manager)
    assert [(c.field, c.new) for c in changes] == [
        ("memory_mb", 2500),
        ("walltime_s", 7200),
        ("split_rule", "2"),
    ]
    commands = modify.modify(task, values, manager)
    _db.session.commit()
    assert [c.outcome for c in commands] == [Outcome.ACCEPTED] * 3
    info = panda_clients().get_detailed_info(manager, task.panda_task_id)
    assert (
        info.raw["ramCount"] == 2500
        and info.raw["walltime"] == 7200
        and "nFilesPerJob=2" in info.raw["splitRule"]
    )
    assert modify.current_values(task)["memory_mb"] == 2500  # the next difference starts from here
    with pytest.raises(services.InvalidInput, match="nothing to change"):
        modify.plan_changes(task, {"memory_mb": "2500"}, manager)


def test_a_command_for_a_task_panda_does_not_know_is_rejected_in_words(sim, manager):
    task = launched(manager, 17, sim)
    task.panda_task_id = 999_999
    command = act(task, "kill", manager)
    assert command.outcome == Outcome.REJECTED and command.panda_code == 2
    assert command.message.startswith("PanDA does not know this task")
