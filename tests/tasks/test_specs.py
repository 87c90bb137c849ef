"""The task fields are declared once (app/tasks/specs.py): the form, the per-task specs, cloning and
the next-step form follow the declaration."""

import dataclasses

from app.launches.forms import ScheduleFields
from app.tasks import services, specs
from app.tasks.forms import TaskForm
from app.tasks.models import TaskBunch
from tests.tasks.conftest import sim_definition

# Every field away from its default, so that a field dropped on the way shows.
FULL = dict(
    priority=900, memory_mb=3000, walltime_s=3600, max_attempts=4,
    site="JINR_PROD", working_group="SPD", template_overrides={"gshare": "Test"}, comment="full", skip_scout=True,
)  # fmt: skip


def changed(old, new) -> set[str]:
    return {f.name for f in dataclasses.fields(old) if getattr(old, f.name) != getattr(new, f.name)}


def test_the_form_has_a_field_for_every_definition_field(app):
    with app.test_request_context():
        form = TaskForm()
    own = {"csrf_token", "idempotency_key", "cloned_from_task", "cloned_from_bunch"}
    own |= {name for name in vars(ScheduleFields) if not name.startswith("_")} & {f.name for f in form}
    assert {field.name for field in form} - own == set(specs.DEFINITION_FIELDS)


def test_the_form_gives_back_the_definition_it_was_filled_with(app):
    definition = sim_definition(**FULL)
    with app.test_request_context():
        form = TaskForm().configure(app.config["SETTINGS"])
        form.fill(definition)
        assert form.to_definition() == definition


def test_every_task_of_a_bunch_gets_the_shared_fields_unchanged():
    definition = sim_definition(bunch_size=2, **FULL)
    tasks = specs.expand_bunch(definition, services.naming.NamingRules(), user_name="u")
    shared = [f.name for f in dataclasses.fields(specs.TaskParameters)]
    for spec in tasks:
        assert {name: getattr(spec, name) for name in shared} == {
            name: getattr(definition, name) for name in shared
        }
    assert tasks[0].template_overrides is not tasks[1].template_overrides


def test_cloning_resets_exactly_the_declared_fields(app, db, make_user):
    bunch, *_ = services.create_bunch(sim_definition(**FULL), make_user("admin"), "k", is_admin=True)
    db.session.commit()
    clone = services.clone_definition(bunch)
    source = specs.TaskDefinition.from_dict(bunch.definition)
    assert changed(source, clone) <= set(specs.CLONE_RESET)
    assert {"task_name", "output_dataset", "comment"} <= changed(source, clone)
    assert set(specs.CLONE_COPIED) == set(specs.DEFINITION_FIELDS) - set(specs.CLONE_RESET)


def test_the_next_step_resets_exactly_the_declared_fields(app, db, make_user):
    bunch, *_ = services.create_bunch(sim_definition(**FULL), make_user("admin"), "k", is_admin=True)
    db.session.commit()
    reco = services.next_step_definition(db.session.get(TaskBunch, bunch.id), "RECO")
    source = specs.TaskDefinition.from_dict(bunch.definition)
    assert changed(source, reco) - {"step"} <= set(specs.NEXT_STEP_RESET_FIELDS)
    assert {"task_name", "output_dataset", "total_events", "events_per_job", "parent_task"} <= changed(
        source, reco
    )
    assert specs.ADMIN_FIELDS == ("priority", "site", "working_group", "template_overrides")
