"""Launch services: new launches (first and later attempts) and the managers' decisions about
submits PanDA never answered. They flush, never commit; the page actions (`…_and_dispatch`, `adopt`)
also start the dispatch once the request's transaction is committed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError

from app import clock
from app.audit.services import record
from app.auth.models import User
from app.extensions import db, panda_clients
from app.launches.dispatcher import adopt as adopt_launch
from app.launches.dispatcher import dispatch_soon, settle_unknown
from app.launches.models import Launch
from app.launches.states import LaunchStatus, transition
from app.panda.errors import PandaError
from app.tasks.models import Task, TaskBunch

S = LaunchStatus
# A manager may decide about a submit PanDA did not answer: it arrived (adopt) or it did not.
UNDECIDED = (S.UNKNOWN, S.NEEDS_DECISION)


def new_launch(task: Task, attempt: int, user: User, due_at: datetime, **extra: str | bool) -> Launch:
    """A pending launch of `task`, due at `due_at`, added to the session. Its key is unique per
    attempt, so two concurrent requests cannot both create the same attempt. A later attempt waits
    for the parent as the first one did."""
    previous = task.latest_launch if attempt > 1 else None
    if previous is not None:
        extra.setdefault("after_parent_done", previous.after_parent_done)
    launch = Launch(
        task_id=task.id,
        idempotency_key=f"{task.bunch.idempotency_key}:{task.bunch_index}:{attempt}",
        attempt=attempt,
        status=S.PENDING,
        due_at=due_at,
        created_by_id=user.id,
        created_at=clock.now(),
        **extra,
    )
    db.session.add(launch)
    return launch


def resend_failed(bunch: TaskBunch, user: User) -> list[Launch]:
    """A new launch (next attempt, due now) for every task whose latest launch failed; nothing else."""
    created: list[Launch] = []
    now = clock.now()
    try:
        with db.session.begin_nested():
            for task in bunch.tasks:
                latest = task.latest_launch
                if latest is None or latest.status != S.FAILED or task.panda_task_id is not None:
                    continue
                created.append(new_launch(task, latest.attempt + 1, user, now))
            db.session.flush()
    except IntegrityError:
        return []  # a concurrent resend created them
    if created:
        record(
            "task.resend",
            target=bunch.base_name,
            details={"bunch_id": bunch.id, "n": len(created)},
            user=user,
        )
    return created


def resend_failed_and_dispatch(bunch: TaskBunch, user: User) -> int:
    """The bunch page's "resend failed": `resend_failed`, dispatched once committed; how many."""
    launches = resend_failed(bunch, user)
    if launches:
        dispatch_soon()
    return len(launches)


def mark_not_submitted(task: Task, user: User) -> Launch | None:
    """A manager checked PanDA: the unanswered submit did not arrive. Closes the undecided launch and
    queues the next attempt, which is sent without the name pre-check PanDA could not answer."""
    latest = task.latest_launch
    if latest is None or latest.status not in UNDECIDED or task.panda_task_id is not None:
        return None
    transition(latest, S.FAILED, error=f"marked not in PanDA by {user.username}")
    launch = new_launch(task, latest.attempt + 1, user, clock.now(), confirmed_absent_by=user.username)
    db.session.flush()
    record("task.mark_not_submitted", target=task.name, details={"task_id": task.id, "attempt": launch.attempt},
           user=user)  # fmt: skip
    return launch


def mark_not_submitted_and_dispatch(task: Task, user: User) -> Launch | None:
    """The task page's "not in PanDA: send again": `mark_not_submitted`, dispatched once committed."""
    launch = mark_not_submitted(task, user)
    if launch is not None:
        dispatch_soon()
    return launch


def undecided_of(tasks: list[Task]) -> list[Launch]:
    """The tasks' latest launches whose submit PanDA never answered (unknown or awaiting a decision)."""
    latest = (task.latest_launch for task in tasks if task.panda_task_id is None)
    return [launch for launch in latest if launch is not None and launch.status in UNDECIDED]


def look_up_now(launches: list[Launch], user: User) -> str:
    """A manager's "look it up now": the unanswered submits are looked up in PanDA at once (one
    listing per owner, logged with the manager's name) and settled as the background pass would;
    returns what was found, in words (audited)."""
    if not launches:
        return "nothing was waiting for a look-up"
    client = panda_clients(interactive=True)
    try:
        report = settle_unknown(client, [launch.id for launch in launches], comment=f"look-up asked by {user.username}",
                                by=user, commit=db.session.flush)  # fmt: skip
    finally:
        client.close()
    names = sorted(launch.task.name for launch in launches)
    record("task.look_up", target=names[0] if len(names) == 1 else f"{len(names)} tasks",
           details={"tasks": names[:100], "result": report.sentence()}, user=user)  # fmt: skip
    return report.sentence()


def adopt(task: Task, panda_task_id: int, user: User) -> str | None:
    """A manager found the task in PanDA by hand: adopt its id once PanDA, asked with the manager's
    own token, confirms the name. Returns why it was refused, or None when adopted (audited)."""
    error = _adopt(task, panda_task_id, user)
    record("task.adopt", target=task.name, outcome="ok" if error is None else "refused",
           details={"panda_task_id": panda_task_id, "error": error}, user=user)  # fmt: skip
    return error


def _adopt(task: Task, panda_task_id: int, user: User) -> str | None:
    launch = task.latest_launch
    if launch is None or launch.status not in UNDECIDED or task.panda_task_id is not None:
        return "the task is not waiting for a decision"
    client = panda_clients(interactive=True)
    try:
        info = client.get_detailed_info(user, panda_task_id)
    except PandaError as exc:
        return f"PanDA could not confirm task {panda_task_id}: {exc}"
    finally:
        client.close()
    if info.name != task.name:
        return f"PanDA task {panda_task_id} is named {info.name!r}, not {task.name!r}"
    adopt_launch(launch, panda_task_id, f"adopted by {user.username} after checking PanDA",
                 {"outcome": "adopted", "task_id": panda_task_id})  # fmt: skip
    db.session.flush()
    return None
