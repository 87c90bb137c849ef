"""Task services and the dispatcher with a scripted PanDA client: validation, creation, exactly-once."""

import dataclasses
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.launches import dispatcher
from app.launches import services as launches
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.tasks import services
from app.tasks.models import Task, TaskBunch
from tests.fakes.panda import LegacyFakePanda, install
from tests.helpers import bunch_counts, settle_launches
from tests.tasks.conftest import EXEC, SIF, TAG, sim_definition


def errors_of(definition, *, is_admin=False):
    errors, _warnings = services.validate_definition(definition, is_admin=is_admin)
    return errors


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"total_events": 0}, "total_events", "total events must be greater than 0"),
        ({"total_events": None}, "total_events", "total events must be greater than 0"),
        ({"events_per_job": 0}, "events_per_job", "events per job must be greater than 0"),
        ({"events_per_job": None}, "events_per_job", "events per job must be greater than 0"),
        (
            {"events_per_job": 20000},
            "events_per_job",
            "events per job (20000) must not exceed total events (10000)",
        ),
        ({"initial_offset": -1}, "initial_offset", "initial offset must be 0 or more"),
        # Upper limits (tasks.max_*): a task too big for PanDA (or the simulator) is refused at preview.
        ({"total_events": 10**20}, "total_events", "total events must be at most 1,000,000,000 per task"),
        (
            {"total_events": 10**9, "events_per_job": 100},
            "events_per_job",
            "this makes 10,000,000 jobs per task, at most 1,000,000 are allowed: raise events per job to 1,000 or more",
        ),
        (
            {"events_per_job": 10**8, "total_events": 10**9},
            "events_per_job",
            "events per job must be at most 10,000,000",
        ),
        ({"memory_mb": 10**6}, "memory_mb", "memory must be at most 64,000 MB"),
        ({"walltime_s": 10**8}, "walltime_s", "walltime must be at most 604,800 s"),
        ({"bunch_size": 0}, "bunch_size", "tasks to launch must be between 1 and 1000"),
        ({"bunch_size": 1001}, "bunch_size", "tasks to launch must be between 1 and 1000"),
        (
            {"exec_path": "/afs/x/minbias.V01"},
            "exec_path",
            "path to execution files must be an absolute path under /cvmfs/spd.jinr.ru/",
        ),
        ({"exec_path": "/cvmfs/spd.jinr.ru/../etc/x"}, "exec_path", "must be an absolute path under"),
        (
            {"container_path": "/tmp/x.sif"},
            "container_path",
            "path to container must be an absolute path under /cvmfs/spd.jinr.ru/",
        ),
        (
            {"container_path": "/cvmfs/spd.jinr.ru/images/spdroot.img"},
            "container_path",
            "path to container must be an image matching",
        ),
        ({"cloud": "CERN"}, "cloud", "cloud must be one of JINR"),
        ({"data_disk": "X"}, "data_disk", "data disk must be one of JINR_DATADISK"),
        ({"request_id": -1}, "request_id", "request id must be a positive number"),
        ({"task_name": "PROD2025-008.RECO"}, "task_name", "step RECO does not match step type SIM"),
        ({"task_name": "PRD2025-008.SIM"}, "task_name", "must start with a production id like PROD2025-001"),
        ({"task_name": "PROD2025-008.SIM.2"}, "task_name", "enter the task name without the bunch index"),
        ({"output_dataset": "junk"}, "output_dataset", "does not follow the pattern"),
        (
            {"output_dataset": f"MC2025_S1.{TAG}.PROD2025-008.RECO.1"},
            "output_dataset",
            "step RECO does not match step type SIM",
        ),
        (
            {"output_dataset": f"MC2025_S1.{TAG}.PROD2025-009.SIM.1"},
            "output_dataset",
            "production PROD2025-009 does not match the task's production PROD2025-008",
        ),
        (
            {"output_dataset": "MC2025_S1.other-tag.PROD2025-008.SIM.1"},
            "output_dataset",
            "physics tag other-tag does not match the execution path's tag " + TAG,
        ),
        ({"memory_mb": 0}, "memory_mb", "memory must be greater than 0"),
        ({"walltime_s": -5}, "walltime_s", "walltime must be greater than 0"),
        ({"max_attempts": 0}, "max_attempts", "max attempts must be between 1 and 100"),
        ({"step": "DIGI"}, "step", "step type must be one of SIM, RECO"),
    ],
)
def test_every_validation_message(app, changes, field, message):
    errors = errors_of(sim_definition(**changes))
    assert field in errors, errors
    assert any(message in m for m in errors[field]), errors[field]


def test_valid_definition_and_non_dividing_note(app):
    assert errors_of(sim_definition()) == {}
    errors, warnings = services.validate_definition(sim_definition(events_per_job=3000), is_admin=False)
    assert errors == {}
    assert warnings == [
        "total events (10000) are not a multiple of events per job (3000): each task runs 4 jobs, the last one with 1000 events"
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("priority", 900),
        ("site", "JINR_PROD"),
        ("working_group", "spd"),
        ("template_overrides", {"gshare": "x"}),
    ],
)
def test_admin_fields_refused_from_managers(app, field, value):
    definition = sim_definition(**{field: value})
    assert errors_of(definition)[field] == ["only admins may set this field"]
    assert errors_of(definition, is_admin=True) == {}


def test_admin_value_rules(app):
    errors = errors_of(
        sim_definition(
            priority=-1, site="bad site", working_group="a b", template_overrides={"taskName": "x"}
        ),
        is_admin=True,
    )
    assert errors == {
        "priority": ["priority must be between 0 and 10000"],
        "site": ["site must be a PanDA queue name (letters, digits, '_', '-', '.')"],
        "working_group": ["working group may contain only letters, digits, '_', '-', '.'"],
        "template_overrides": ["template overrides may not change taskName (names are checked by the panel)"],
    }


def test_create_bunch_outbox_and_idempotency(app, db, make_user):
    user = make_user("manager")
    bunch, created, _ = services.create_bunch(
        sim_definition(bunch_size=3, initial_offset=7), user, "k1", is_admin=False
    )
    db.session.commit()
    assert created and bunch.size == 3
    assert [t.name for t in bunch.tasks] == ["PROD2025-008.SIM.1", "PROD2025-008.SIM.2", "PROD2025-008.SIM.3"]
    assert [t.spec["offset"] for t in bunch.tasks] == [7, 10007, 20007]
    assert [t.output_dataset.rsplit(".", 1)[1] for t in bunch.tasks] == ["1", "2", "3"]
    keys = sorted(launch.idempotency_key for t in bunch.tasks for launch in t.launches)
    assert keys == ["k1:1:1", "k1:2:1", "k1:3:1"]
    again, created, _ = services.create_bunch(
        sim_definition(bunch_size=3, initial_offset=7), user, "k1", is_admin=False
    )
    assert not created and again.id == bunch.id
    assert db.session.scalar(select(func.count()).select_from(Launch)) == 3


def test_names_are_unique(app, db, make_user):
    user = make_user("manager")
    services.create_bunch(sim_definition(bunch_size=2), user, "a", is_admin=False)
    db.session.commit()
    errors = errors_of(sim_definition())
    assert errors["task_name"] == [
        "PROD2025-008.SIM is already used by another bunch; choose the next production number"
    ]
    errors = errors_of(
        sim_definition(number=9, output_dataset=f"MC2025_S1.{TAG}.PROD2025-009.SIM.1", bunch_size=1)
    )
    assert errors == {}
    # Same dataset under another name is refused too.
    clash = sim_definition(number=9, bunch_size=1)
    clash = dataclasses.replace(
        clash, output_dataset=f"MC2025_S1.{TAG}.PROD2025-008.SIM.2", task_name="PROD2025-008.SIM"
    )
    assert "output dataset MC2025_S1." in errors_of(clash).get("output_dataset", [""])[0]
    with pytest.raises(services.ValidationFailed):
        services.create_bunch(sim_definition(), user, "b", is_admin=False)


def test_next_production_suggestion(app, db, make_user, clock):
    assert services.suggest_production().format(services.naming_rules()) == "PROD2026-001"
    services.create_bunch(
        sim_definition(task_name="PROD2026-004.SIM", output_dataset=f"S.{TAG}.PROD2026-004.SIM.1"),
        make_user(),
        "x",
        is_admin=False,
    )
    assert services.suggest_production().number == 5
    assert services.suggest_production("TEST_S1-").number == 1  # another campaign has its own numbers


def test_production_suggestion_after_999_and_in_a_campaign(app, db, make_user, clock):
    """Numbers wider than the padding sort before narrower ones as text; the suggestion still follows."""
    user = make_user()
    for key, production in enumerate(("PROD2026-998", "PROD2026-999", "PROD2026-1000", "TEST_S1-PROD2026-041")):
        services.create_bunch(
            sim_definition(task_name=f"{production}.SIM", output_dataset=f"S.{TAG}.{production}.SIM.1"),
            user, str(key), is_admin=False,
        )  # fmt: skip
    assert services.suggest_production().number == 1001
    assert services.suggest_production("TEST_S1-").format(services.naming_rules()) == "TEST_S1-PROD2026-042"


def test_dispatch_exactly_once_with_unknown_outcomes(app, db, make_user, fake_panda, clock):
    user = make_user("manager")
    bunch, *_ = services.create_bunch(sim_definition(bunch_size=5), user, "k", is_admin=False)
    db.session.commit()
    fake_panda.script = ["ok", "unknown", "reject", "unavailable", "ok"]
    assert settle_launches()
    counts = bunch_counts(bunch.id)
    # PanDA unreachable: nothing was sent, so the launch waits to go again by itself (pending, later).
    assert counts == {"submitted": 3, "failed": 1, "pending": 1}
    assert fake_panda.submits == [f"PROD2025-008.SIM.{i}" for i in range(1, 6)]  # each sent once
    tasks = db.session.scalars(select(Task).order_by(Task.bunch_index)).all()
    assert (
        tasks[1].panda_task_id is not None
        and "reconciled" in tasks[1].latest_launch.manifest["panda_reply"]["how"]
    )
    assert "too many active tasks" in tasks[2].latest_launch.error
    assert "Nothing was sent; the panel tries again by itself at" in tasks[3].latest_launch.error
    clock.advance(seconds=11)
    assert dispatcher.dispatch_due(client=fake_panda) == 1
    assert tasks[3].latest_launch.status == "submitted" and tasks[3].latest_launch.attempt == 1
    manifest = tasks[0].latest_launch.manifest
    assert manifest["task_parameters"]["taskName"] == "PROD2025-008.SIM.1"
    assert manifest["panda_reply"]["task_id"] == tasks[0].panda_task_id
    assert manifest["user"] == user.username and manifest["request_id"] == 42
    assert manifest["container_path"] == SIF and manifest["exec_path"] == EXEC
    from app import VERSION

    assert manifest["panel_version"] == VERSION and manifest["sent_at"] and "panda_server" in manifest
    # Resend only the failed ones; a second resend creates nothing more.
    assert len(launches.resend_failed(bunch, user)) == 1
    assert launches.resend_failed(bunch, user) == []
    db.session.commit()
    assert settle_launches()
    assert bunch_counts(bunch.id) == {"submitted": 5, "failed": 1}
    assert services.bunch_progress(bunch).submitted == 5
    assert len(fake_panda.submits) == 7


def test_claim_is_exclusive_and_crash_left_rows_are_reconciled(app, db, make_user, fake_panda, clock):
    user = make_user("manager")
    bunch, *_ = services.create_bunch(sim_definition(), user, "k", is_admin=False)
    db.session.commit()
    launch = bunch.tasks[0].launches[0]
    assert dispatcher.claim(launch.id, clock())
    assert not dispatcher.claim(launch.id, clock())
    # The panel died after claiming and possibly sending: the scheduler reconciles, never resends.
    fake_panda.tasks[4242] = {"params": {"taskName": bunch.tasks[0].name}, "parent_tid": None}
    clock.advance(minutes=10)
    assert dispatcher.dispatch_due(client=fake_panda) == 1
    db.session.refresh(launch)
    assert launch.status == "submitted" and launch.panda_task_id == 4242
    assert fake_panda.submits == []


def test_unknown_that_never_arrives_waits_for_a_decision_without_evidence(app, db, make_user, fake_panda, clock):
    """Absence alone is no proof (JEDI may not have registered the task yet): the lone unanswered
    submit goes to a manager after the grace period and is never resent by the panel."""
    user = make_user("manager")
    bunch, *_ = services.create_bunch(sim_definition(), user, "k", is_admin=False)
    db.session.commit()
    fake_panda.script = ["lost"]
    assert settle_launches() and bunch_counts(bunch.id) == {"unknown": 1}
    launch = bunch.tasks[0].launches[0]
    clock.advance(minutes=16)
    assert dispatcher.reconcile(launch.id, fake_panda) == "needs_decision"
    assert "no task sent after it is visible yet" in launch.error
    assert fake_panda.submits == ["PROD2025-008.SIM"]
    # The manager finds it after all (it arrived late): adopted, nothing sent again.
    fake_panda.tasks[77] = {"params": {"taskName": "PROD2025-008.SIM"}, "parent_tid": None}
    assert launches.look_up_now([launch], user) == "1 found in PanDA and adopted"
    assert launch.status == "submitted" and bunch.tasks[0].panda_task_id == 77
    assert fake_panda.submits == ["PROD2025-008.SIM"]


def test_reco_reads_parent_output_and_waits_for_parent(app, db, make_user, fake_panda):
    user = make_user("manager")
    sim, *_ = services.create_bunch(sim_definition(bunch_size=2), user, "s", is_admin=False)
    reco_def = sim_definition(
        step="RECO",
        task_name="PROD2025-008.RECO",
        bunch_size=2,
        total_events=None,
        events_per_job=None,
        output_dataset=f"MC2025_S1.{TAG}.PROD2025-008.RECO.1",
        files_per_job=2,
    )
    reco, *_ = services.create_bunch(reco_def, user, "r", is_admin=False)
    db.session.commit()
    assert [t.parent.name for t in reco.tasks] == ["PROD2025-008.SIM.1", "PROD2025-008.SIM.2"]
    item = next(i for i in reco.tasks[1].params["jobParameters"] if i.get("param_type") == "input")
    assert item["dataset"] == sim.tasks[1].output_dataset
    # The parents are not in PanDA yet (their launches are due later): the RECO launches wait
    # (pending, saying why), nothing is sent.
    for task in sim.tasks:
        task.latest_launch.due_at = datetime(2100, 1, 1, tzinfo=UTC)
    db.session.commit()
    assert settle_launches() and bunch_counts(reco.id) == {"pending": 2}
    assert reco.tasks[0].latest_launch.error == "waiting for parent task PROD2025-008.SIM.1 to reach PanDA"
    assert fake_panda.submits == []
    for task in sim.tasks:
        task.latest_launch.due_at = datetime(2000, 1, 1, tzinfo=UTC)
    db.session.commit()
    assert settle_launches() and bunch_counts(reco.id) == {"submitted": 2}
    sent = {t["params"]["taskName"]: t["parent_tid"] for t in fake_panda.tasks.values()}
    assert sent["PROD2025-008.RECO.2"] == sim.tasks[1].panda_task_id


def test_processing_step_rules(app):
    reco = dict(
        step="RECO", task_name="PROD2025-008.RECO", output_dataset=f"MC2025_S1.{TAG}.PROD2025-008.RECO.1"
    )
    assert errors_of(sim_definition(**reco, files_per_job=0))["files_per_job"] == [
        "files per job must be greater than 0"
    ]
    errors = errors_of(sim_definition(**reco, files_per_job=1))  # total events and events per job set
    assert errors["total_events"] == ["total events is for generation steps; RECO reads its parent's files"]
    assert errors["events_per_job"] == [
        "events per job is for generation steps; RECO reads its parent's files"
    ]
    errors = errors_of(sim_definition(files_per_job=2, parent_task="PROD2025-007.SIM"))
    assert errors["files_per_job"] == ["files per job is for processing steps; SIM generates its events"]
    assert errors["parent_task"] == ["a parent task is for processing steps; SIM reads no input"]


def test_reco_without_parent_is_refused(app):
    reco_def = sim_definition(
        step="RECO",
        task_name="PROD2025-008.RECO",
        output_dataset=f"MC2025_S1.{TAG}.PROD2025-008.RECO.1",
    )
    assert errors_of(reco_def)["parent_task"] == ["parent task PROD2025-008.SIM does not exist in the panel"]


def test_clone_and_relaunch_definitions(app, db, make_user, fake_panda, clock):
    user = make_user("manager")
    bunch, *_ = services.create_bunch(
        sim_definition(bunch_size=3, initial_offset=5, comment="c"), user, "k", is_admin=False
    )
    db.session.commit()
    clone = services.clone_definition(bunch)
    assert clone.task_name == "PROD2026-001.SIM"
    assert clone.bunch_size == 3 and clone.initial_offset == 5 and clone.comment == ""
    assert clone.output_dataset == f"MC2025_S1.{TAG}.{clone.task_name.rsplit('.', 1)[0]}.SIM.1"
    one = services.clone_definition(bunch.tasks[2])
    assert one.bunch_size == 1 and one.initial_offset == 20005
    assert settle_launches()
    relaunch = services.definition_from_manifest(bunch.tasks[1].launches[0].manifest)
    assert relaunch.initial_offset == 10005 and relaunch.bunch_size == 1
    assert relaunch.comment == "relaunch of PROD2025-008.SIM.2"
    cloned, *_ = services.create_bunch(one, user, "c", is_admin=False, cloned_from=bunch.tasks[2])
    db.session.commit()
    assert cloned.tasks[0].cloned_from.id == bunch.tasks[2].id
    assert bunch.tasks[2].clones[0].id == cloned.tasks[0].id
    assert db.session.get(TaskBunch, cloned.id).cloned_from_id == bunch.id


def test_instance_template_file_overrides_the_spd_defaults(app, settings_factory, db, make_user):
    import dataclasses as dc

    from flask import current_app

    settings = current_app.config["SETTINGS"]
    (settings.instance_dir / "taskparams.toml").write_text(
        '[common]\nprodSourceLabel = "test"\n[steps.SIM]\nprocessingType = "evgen"\n'
    )
    current_app.config["SETTINGS"] = dc.replace(
        settings, tasks=dc.replace(settings.tasks, template_file="taskparams.toml")
    )
    plan = services.plan_bunch(sim_definition(), make_user(), is_admin=False)
    params = plan.tasks[0].params
    assert (params["prodSourceLabel"], params["processingType"], params["vo"]) == ("test", "evgen", "spd")


def test_unknown_step_in_config_without_template_is_reported(app):
    import dataclasses as dc

    from flask import current_app

    settings = current_app.config["SETTINGS"]
    current_app.config["SETTINGS"] = dc.replace(
        settings, tasks=dc.replace(settings.tasks, step_types=["SIM", "RECO", "DIGI"])
    )
    errors = errors_of(sim_definition(step="DIGI", task_name="PROD2025-008.DIGI"))
    assert errors["step"] == ["the task template has no [steps.DIGI] table"]


def test_legacy_listing_settles_when_it_can_and_asks_a_human_when_it_cannot(app, db, make_user, clock):
    fake = LegacyFakePanda()
    user = make_user("manager")
    bunch, *_ = services.create_bunch(sim_definition(bunch_size=3), user, "k", is_admin=False)  # all reqID 42
    db.session.commit()
    fake.script = ["unknown", "lost", "ok"]
    install(app, fake)
    assert settle_launches()
    first, second, third = bunch.tasks
    # Task .3 is the newest with reqID 42, so the listing hides .1 (which did arrive) and .2 (which did not).
    assert first.latest_launch.status == second.latest_launch.status == LaunchStatus.NEEDS_DECISION
    assert first.latest_launch.error == dispatcher.INCONCLUSIVE
    clock.advance(hours=2)
    assert dispatcher.dispatch_due(client=fake) == 0  # awaiting a manager: PanDA is not asked again
    assert (
        second.latest_launch.status == LaunchStatus.NEEDS_DECISION
    )  # no grace period turns a guess into a resend
    assert launches.mark_not_submitted(third, user) is None  # only for undecided tasks
    launch = launches.mark_not_submitted(second, user)
    db.session.commit()
    assert launch.confirmed_absent_by == user.username and launch.attempt == 2
    assert second.launches[0].error == f"marked not in PanDA by {user.username}"
    assert settle_launches()
    db.session.expire_all()  # the jobs stored it in sessions of their own
    assert fake.submits == [
        "PROD2025-008.SIM.1",
        "PROD2025-008.SIM.2",
        "PROD2025-008.SIM.3",
        "PROD2025-008.SIM.2",
    ]
    assert second.panda_task_id is not None and first.panda_task_id is None


def test_legacy_listing_without_shared_request_id_is_conclusive(app, db, make_user, clock):
    fake = LegacyFakePanda()
    user = make_user("manager")
    bunch, *_ = services.create_bunch(
        sim_definition(bunch_size=2, request_id=None), user, "k", is_admin=False
    )
    db.session.commit()
    fake.script = ["unknown", "lost"]
    install(app, fake)
    assert settle_launches()
    assert bunch.tasks[0].latest_launch.manifest["panda_reply"]["how"] == "reconciled by task name"
    clock.advance(hours=1)  # the last one sent: nothing later can prove it absent
    assert dispatcher.reconcile(bunch.tasks[1].latest_launch.id, fake) == "needs_decision"


def test_no_token_fails_and_unexpected_errors_are_settled_by_name(app, db, make_user, fake_panda):
    user = make_user("manager")
    bunch, *_ = services.create_bunch(sim_definition(bunch_size=2), user, "k", is_admin=False)
    db.session.commit()
    fake_panda.script = ["notoken", "crash"]
    assert settle_launches()
    assert bunch_counts(bunch.id) == {"failed": 1, "submitted": 1}
    assert bunch.tasks[0].latest_launch.error == "not sent: log in with SPD-IAM again"
    assert bunch.tasks[1].latest_launch.manifest["panda_reply"]["how"] == "reconciled by task name"
    assert fake_panda.submits == ["PROD2025-008.SIM.1", "PROD2025-008.SIM.2"]


@pytest.mark.parametrize(
    ("exec_path", "message"),
    [
        ("/cvmfs/spd.jinr.ru/production/MC/.V01", "no physics tag in execution path"),
        ("/cvmfs/spd.jinr.ru/production/MC/min bias.V01", "physics tag 'min bias' may contain only"),
    ],
)
def test_physics_tag_errors_of_the_execution_path(app, exec_path, message):
    assert message in errors_of(sim_definition(exec_path=exec_path))["exec_path"][0]


def test_a_bunch_member_name_already_used_is_named(app, db, make_user):
    services.create_bunch(sim_definition(bunch_size=2), make_user("manager"), "a", is_admin=False)
    db.session.commit()
    errors = errors_of(sim_definition(bunch_size=3, task_name="PROD2025-008.SIM"))
    assert errors["task_name"] == ["task name PROD2025-008.SIM.1 is already used"]


def test_a_panda_id_seen_before_is_recorded(app, db, make_user, fake_panda):
    """PanDA ids are unique per server only: after a switch of server (or a restarted sandbox simulator
    counting from 1 again) a new task may get an id an old one holds. It must still be recorded."""
    import itertools

    user = make_user("manager")
    old, *_ = services.create_bunch(sim_definition(number=1), user, "old", is_admin=False)
    db.session.commit()
    assert settle_launches()
    fake_panda.ids = itertools.count(1000)  # the new server starts again
    new, *_ = services.create_bunch(sim_definition(number=2, bunch_size=2), user, "new", is_admin=False)
    db.session.commit()
    assert settle_launches() and bunch_counts(new.id) == {"submitted": 2}
    assert [t.panda_task_id for t in (*old.tasks, *new.tasks)] == [1000, 1000, 1001]


def test_one_row_failing_in_the_database_does_not_stop_the_bunch(app, db, make_user, fake_panda, monkeypatch):
    user = make_user("manager")
    bunch, *_ = services.create_bunch(sim_definition(bunch_size=3), user, "k", is_admin=False)
    db.session.commit()
    check = dispatcher.dependencies  # asked again once the row is claimed

    def failing_for_the_first(launch):
        if launch.task.bunch_index == 1:
            raise RuntimeError("disk full")
        return check(launch)

    monkeypatch.setattr(dispatcher, "dependencies", failing_for_the_first)
    # The failing row's claim is undone with its step (nothing was sent): it stays pending.
    assert settle_launches()
    assert bunch_counts(bunch.id) == {"pending": 1, "submitted": 2}
    assert fake_panda.submits == ["PROD2025-008.SIM.2", "PROD2025-008.SIM.3"]
