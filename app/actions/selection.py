"""Which tasks a bulk action is about: ticked rows of the task list, every task matching the task
list's filter ("select all N matching this filter"), a bunch, a chain, or a production request.

The filter is the task tables' own (`app.monitoring.filters.TaskFilter`): "all N matching this
filter" acts on exactly the rows the table shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import defer

from app.auth.current import current_user
from app.chains.models import Chain, ChainStep
from app.config import get_settings
from app.extensions import db
from app.inputs import as_id
from app.monitoring.filters import QUERY_KEYS, BadFilter, TaskFilter
from app.prodrequests.services import request_clause
from app.tasks.models import Task

MAX_TASKS = 10_000  # one bulk action acts on at most this many tasks
FILTER_FIELDS = QUERY_KEYS  # the fields that carry "all matching this filter"
SCOPES = ("ids", "filter", "bunch", "chain", "request")


class BadSelection(ValueError):
    """The selection names nothing usable; the message says what is missing."""


@dataclass(frozen=True)
class Selection:
    scope: str  # one of SCOPES
    task_ids: tuple[int, ...] = ()
    filters: TaskFilter | None = None
    target_id: int | None = None  # the bunch, chain or request

    def describe(self) -> str:
        """The selection in words, stored with the bulk action."""
        if self.scope == "ids":
            return f"{len(self.task_ids)} selected task(s)"
        if self.scope == "filter":
            assert self.filters is not None
            return "every task matching " + self.filters.describe()
        return f"{self.scope} {self.target_id}"

    def form_fields(self) -> list[tuple[str, str]]:
        """The hidden fields that carry this selection to the next form."""
        out = [("scope", self.scope)]
        out += [("task_id", str(i)) for i in self.task_ids]
        if self.filters is not None:
            out += self.filters.to_args()
        if self.target_id is not None:
            out.append(("target_id", str(self.target_id)))
        return out


def filters_from(data: Mapping[str, Any]) -> TaskFilter:
    """The task tables' filter from a query string (or the hidden fields that carry it); "my tasks"
    are the logged-in user's. Raises BadSelection for a filter the table would refuse."""
    user = current_user()
    try:
        return TaskFilter.from_args(data, user_id=user.id if user else None, steps=get_settings().tasks.step_types)
    except BadFilter as exc:
        raise BadSelection(str(exc)) from None


def selection_from(data: Any) -> Selection:
    """A selection from a form (a MultiDict: `task_id` may repeat); raises BadSelection."""
    scope = str(data.get("scope") or "")
    if scope == "ids":
        raw = data.getlist("task_id") if hasattr(data, "getlist") else data.get("task_id") or []
        ids = tuple(dict.fromkeys(i for v in raw if (i := as_id(str(v))) is not None))
        if not ids:
            raise BadSelection("tick at least one task")
        if len(ids) > MAX_TASKS:
            raise BadSelection(f"at most {MAX_TASKS} tasks at once")
        return Selection("ids", task_ids=ids)
    if scope == "filter":
        return Selection("filter", filters=filters_from(data))
    if scope in ("bunch", "chain", "request"):
        target = as_id(str(data.get("target_id") or ""))
        if target is None:
            raise BadSelection(f"no {scope} given")
        return Selection(scope, target_id=target)
    raise BadSelection("nothing selected")


def _filtered(filters: TaskFilter) -> Select[Any]:
    return select(Task.id).where(*filters.clauses()).order_by(Task.id)


def _query(selection: Selection) -> Select[Any]:
    ids = select(Task.id)
    if selection.scope == "ids":
        return ids.where(Task.id.in_(selection.task_ids)).order_by(Task.id)
    if selection.scope == "filter":
        assert selection.filters is not None
        return _filtered(selection.filters)
    if selection.scope == "bunch":
        return ids.where(Task.bunch_id == selection.target_id).order_by(Task.bunch_index)
    if selection.scope == "chain":
        steps = select(ChainStep.bunch_id).where(ChainStep.chain_id == selection.target_id)
        return ids.where(Task.bunch_id.in_(steps)).order_by(Task.id)
    assert selection.target_id is not None
    # as the request's page counts them
    return ids.where(request_clause(selection.target_id)).order_by(Task.id)


def count(selection: Selection) -> int:
    """How many tasks the selection names now."""
    return (
        db.session.scalar(select(func.count()).select_from(_query(selection).order_by(None).subquery())) or 0
    )


def selected_tasks(selection: Selection) -> list[Task]:
    """The selected tasks (at most MAX_TASKS; BadSelection beyond, or when there are none)."""
    if selection.scope == "chain" and db.session.get(Chain, selection.target_id) is None:
        raise BadSelection("no such chain")
    ids = list(db.session.scalars(_query(selection).limit(MAX_TASKS + 1)))
    if not ids:
        raise BadSelection("no task matches this selection")
    if len(ids) > MAX_TASKS:
        raise BadSelection(f"more than {MAX_TASKS} tasks match: narrow the filter")
    query = select(Task).options(defer(Task.spec), defer(Task.params)).where(Task.id.in_(ids))
    tasks = {t.id: t for t in db.session.scalars(query)}
    return [tasks[i] for i in ids if i in tasks]
