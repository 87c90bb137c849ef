"""A panel's data at a chosen size, made through the app's services as users make it: a chain whose
first step is a bunch of `tasks` tasks (steps after it read it task by task), a clone of that bunch,
half of the tasks in PanDA with a status history, commands, a bulk action, PanDA calls, audit events,
catalog entries and accounts. The statement-count test builds it at two sizes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from app import clock
from app.actions import bulk as bulk_services
from app.actions import services as actions
from app.actions.matrix import Action
from app.actions.models import Outcome
from app.actions.selection import Selection
from app.auth.models import User
from app.auth.services import create_local_user
from app.chains import services as chains
from app.chains.specs import ChainDefinition
from app.extensions import db
from app.launches.schedule import Schedule
from app.launches.states import LaunchStatus
from app.panda.models import PandaCall
from app.prodrequests.models import CatalogEntry
from app.sync.models import TaskStatusChange
from app.tasks import services as tasks
from app.tasks.models import TaskBunch
from tests.chains.conftest import reco_definition
from tests.tasks.conftest import TAG, sim_definition

# Processing steps after SIM → RECO, so that a chain may have up to four steps.
EXTRA_STEPS = ("DIGI", "ANA")
TEMPLATE = "".join(
    f'[steps.{step}]\nkind = "processing"\nprocessingType = "{step.lower()}"\n'
    'job_parameters = "--input ${IN/L} --output={output_file}"\n\n'
    for step in EXTRA_STEPS
)


@dataclass(frozen=True)
class World:
    task_id: int  # a submitted task in the middle of the first bunch, with children, clones, commands
    bunch_id: int
    clone_id: int  # the clone of that bunch: not sent yet, so editable
    chain_id: int
    bulk_id: int
    launch_id: int  # a pending launch of the clone, waiting for a task of the first bunch
    request_id: int = 42  # the production request the tasks name


def settings_changes(instance_dir) -> dict:
    """What the settings need for chains of up to four steps (two more processing step types)."""
    (instance_dir / "steps.toml").write_text(TEMPLATE)
    return {"tasks": {"step_types": ["SIM", "RECO", *EXTRA_STEPS], "template_file": "steps.toml"}}


def build(admin: User, tasks_per_bunch: int, steps: int) -> World:
    """The world at one size; committed."""
    number = 8
    definitions = [sim_definition(number, bunch_size=tasks_per_bunch), reco_definition(number, bunch_size=tasks_per_bunch)]
    definitions += [
        reco_definition(number, step=step, bunch_size=tasks_per_bunch, task_name=f"PROD2025-{number:03d}.{step}",
                        output_dataset=f"MC2025_S1.{TAG}.PROD2025-{number:03d}.{step}.1")
        for step in EXTRA_STEPS
    ]  # fmt: skip
    chain_def = ChainDefinition(name=f"PROD2025-{number:03d}", processing_type="MC production",
                                steps=tuple(definitions[:steps]))  # fmt: skip
    chain = chains.create_chain(chain_def, admin, "chain", is_admin=True).chain
    first = db.session.scalar(select(TaskBunch).where(TaskBunch.base_name == f"PROD2025-{number:03d}.SIM"))
    assert first is not None
    clone = dataclasses.replace(
        sim_definition(9, bunch_size=tasks_per_bunch), comment="a clone of the first bunch"
    )
    cloned = tasks.create_bunch(clone, admin, "clone", is_admin=True, cloned_from=first,
                                schedule=Schedule(after_task=first.tasks[0], at_percent=50)).bunch  # fmt: skip
    now = clock.now()
    for i, task in enumerate(first.tasks):  # half of them in PanDA, running, with their history
        if i % 2:
            continue
        task.panda_task_id, task.panda_status, task.jobs_done, task.jobs_total = 1000 + i, "running", i, 2 * i + 1
        launch = task.launches[-1]
        launch.status, launch.panda_task_id = LaunchStatus.SUBMITTED, 1000 + i
        launch.manifest = {"definition": first.definition, "task_parameters": task.params, "panda_reply": {"task_id": 1000 + i}}
        for k, status in enumerate(("registered", "running")):
            db.session.add(TaskStatusChange(task_id=task.id, status=status, began_at=now - timedelta(minutes=10 - k)))
    middle = first.tasks[(tasks_per_bunch // 2) & ~1]
    for k in range(tasks_per_bunch):
        actions.record_command(middle, Action.PRIORITY, {"priority": 500 + k}, admin, f"reason {k}",
                               actions.Answer(Outcome.ACCEPTED, "ok", 0))  # fmt: skip
        db.session.add(PandaCall(at=now, user_id=admin.id, method="getTaskStatus", task_id=middle.panda_task_id,
                                 outcome="ok", params={}, message=""))  # fmt: skip
        db.session.add(CatalogEntry(kind="exec", path=f"/cvmfs/spd.jinr.ru/production/MC/x{k}", source="admin"))
        create_local_user(f"user{k}", "correct-horse-battery", role="viewer")
    bulk = bulk_services.start(Selection("bunch", target_id=first.id), Action.KILL, {"comment": "wrong seed"}, admin)
    db.session.commit()
    return World(middle.id, first.id, cloned.id, chain.id, bulk.id, cloned.tasks[0].launches[-1].id)

