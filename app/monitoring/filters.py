"""The one filter of the task tables: the current and successful tables, their exports, the bulk
selection "all N matching this filter" (app/actions/selection.py) and the JSON API all read tasks
through `TaskFilter.clauses()`, so that an action acts on exactly the rows a table shows.

Its whole state travels in the query string (`from_args` / `to_args`): several values of a
repeated key (``status=running&status=scouting``), each filter negated by naming it in ``not``
(``not=status``), names and datasets as prefixes or with ``*`` and ``?`` wildcards.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, column, false, func, not_, or_, select, table, true
from sqlalchemy.orm import InstrumentedAttribute, aliased

from app.actions.matrix import STATUSES
from app.auth.models import User
from app.chains.models import ChainStep
from app.extensions import db
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.prodrequests.services import request_clause
from app.tasks.models import Task

NO_STATUS = "none"  # not in PanDA yet: no PanDA status stored
TIME_FIELDS = ("submitted", "started", "ended")
_TIME_COLUMNS = {"submitted": Task.submitted_at, "started": Task.started_at, "ended": Task.ended_at}
MAX_VALUES = 100  # values of one repeated key (statuses, PanDA ids)
# A name search without a literal start goes through the trigram index of names (migration 0016)
# when it matches at most this many tasks; beyond, walking the sort order finds a page sooner.
NAME_CANDIDATES_MAX = 10_001


class BadFilter(ValueError):
    """A query-string value the filter cannot use; the message names it (shown with a 400)."""


@dataclass(frozen=True)
class TimeWindow:
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive

    def __bool__(self) -> bool:
        return self.start is not None or self.end is not None


def _doc(description: str, *, choices: tuple[str, ...] = (), key: str = "", **default: Any) -> Any:
    """A filter field with what its query-string key means: the filter's own declaration of its keys,
    from which the API's document and the CLI's options are made (`query_parameters`)."""
    return field(metadata={"description": description, "choices": choices, "key": key}, **default)


@dataclass(frozen=True)
class QueryParameter:
    """One query-string key the filter reads."""

    name: str
    description: str
    type: str  # string, integer, boolean or date-time (YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], UTC)
    repeated: bool = False  # the key may come several times
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks a table shows. `user_id` is the viewer ("my tasks"); every other field comes from
    the query string. `negated` names the filters whose complement is asked for."""

    status: tuple[str, ...] = _doc("PanDA status (repeat for several; `none`: not in PanDA yet)",
                                   choices=(*STATUSES, NO_STATUS), default=())
    step: tuple[str, ...] = _doc("step type, as configured (repeat for several)", default=())
    creator: str = _doc("creator's username", default="")
    mine: bool = _doc("only the caller's own tasks (1, true, yes or on)", default=False)
    q: str = _doc("task name: a prefix, or a pattern with * and ?", default="")
    panda_id: tuple[int, ...] = _doc("PanDA task id (repeat, or comma-separated)", default=())
    request: int | None = _doc("production request id: its tasks and those of its chains", default=None)
    dataset: str = _doc("output dataset: a prefix, or a pattern with * and ?", default="")
    bunch: int | None = _doc("bunch id", default=None)
    chain: int | None = _doc("chain id", default=None)
    cloud: str = _doc("PanDA cloud", default="")
    launch: str = _doc("state of the task's latest launch", choices=tuple(s.value for s in LaunchStatus), default="")
    submitted: TimeWindow = _doc("submitted to PanDA", default_factory=TimeWindow)
    started: TimeWindow = _doc("started running", default_factory=TimeWindow)
    ended: TimeWindow = _doc("ended", default_factory=TimeWindow)
    negated: frozenset[str] = _doc("negate the filter of this name (repeat for several)", key="not",
                                   default=frozenset())
    user_id: int | None = None

    @classmethod
    def from_args(cls, args: Any, *, user_id: int | None = None, steps: Iterable[str] = ()) -> TaskFilter:
        """The filter of a query string (a MultiDict, or a plain mapping of single values); raises
        BadFilter for an unknown status or step, a malformed number or date, an unknown negation."""
        values: dict[str, Any] = {"user_id": user_id}
        statuses = _many(args, "status")
        unknown = [s for s in statuses if s not in STATUSES and s != NO_STATUS]
        if unknown:
            raise BadFilter(f"unknown PanDA status: {', '.join(unknown)}")
        values["status"] = tuple(dict.fromkeys(statuses))
        step_list = _many(args, "step")
        allowed = set(steps)
        if allowed and any(s not in allowed for s in step_list):
            raise BadFilter(f"unknown step: {', '.join(s for s in step_list if s not in allowed)}")
        values["step"] = tuple(dict.fromkeys(step_list))
        for name in ("creator", "q", "dataset", "cloud"):
            values[name] = _one(args, name)[:255]
        values["launch"] = _one(args, "launch")
        if values["launch"] and values["launch"] not in set(LaunchStatus):
            raise BadFilter(f"unknown launch state: {values['launch'][:40]!r}")
        values["mine"] = _one(args, "mine") in ("1", "on", "true", "yes")
        ids = [part for value in _many(args, "panda_id") for part in value.replace(" ", ",").split(",") if part]
        values["panda_id"] = tuple(dict.fromkeys(_integer("PanDA id", part) for part in ids[:MAX_VALUES]))
        for name in ("request", "bunch", "chain"):
            text = _one(args, name)
            values[name] = _integer(name, text) if text else None
        for name in TIME_FIELDS:
            values[name] = TimeWindow(
                _moment(args, f"{name}_from", end=False), _moment(args, f"{name}_to", end=True)
            )
        negated = frozenset(_many(args, "not"))
        if negated - set(FILTER_NAMES):
            raise BadFilter(f"cannot negate: {', '.join(sorted(negated - set(FILTER_NAMES)))}")
        values["negated"] = frozenset(name for name in negated if values[name])
        return cls(**values)

    def to_args(self) -> list[tuple[str, str]]:
        """The query-string pairs of this filter (`from_args` of them gives it back)."""
        out: list[tuple[str, str]] = []
        for name in FILTER_NAMES:
            value = getattr(self, name)
            if isinstance(value, TimeWindow):
                if value.start is not None:
                    out.append((f"{name}_from", _format_moment(value.start)))
                if value.end is not None:
                    out.append((f"{name}_to", _format_moment(value.end, end=True)))
            elif isinstance(value, tuple):
                if name == "panda_id" and value:
                    out.append((name, ",".join(str(v) for v in value)))
                else:
                    out += [(name, str(v)) for v in value]
            elif value is True:
                out.append((name, "1"))
            elif value not in (None, "", False):
                out.append((name, str(value)))
        out += [("not", name) for name in FILTER_NAMES if name in self.negated]
        return out

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in FILTER_NAMES)

    def without_status(self) -> TaskFilter:
        """The same filter with no status part (counts per status show where its other rows are)."""
        return replace(self, status=(), negated=self.negated - {"status"})

    def describe(self) -> str:
        """The filter in words (stored with a bulk action, shown above an export)."""
        parts: dict[str, list[str]] = {}
        for key, value in self.to_args():
            if key != "not":
                parts.setdefault(key, []).append(value)
        words = [
            f"{key}{' not' if key.split('_')[0] in self.negated or key in self.negated else ''}={'|'.join(v)}"
            for key, v in parts.items()
        ]
        return ", ".join(words) or "no filter"

    def clauses(self) -> list[ColumnElement[bool]]:
        """The SQL conditions (AND-ed) of this filter on `Task`."""
        out = []
        for name in FILTER_NAMES:
            if not getattr(self, name):
                continue
            clause = _CLAUSES[name](self)
            # A negated filter is the complement: rows where the condition is false or unknown (NULL).
            out.append(not_(func.coalesce(clause, false())) if name in self.negated else clause)
        return out


def _many(args: Any, name: str) -> list[str]:
    if hasattr(args, "getlist"):
        raw = args.getlist(name)
    else:
        value = args.get(name) if isinstance(args, Mapping) else None
        raw = value if isinstance(value, list | tuple) else [value] if value else []
    return [str(v).strip() for v in raw if str(v or "").strip()][:MAX_VALUES]


def _one(args: Any, name: str) -> str:
    values = _many(args, name)
    return values[0] if values else ""


def _integer(label: str, text: str) -> int:
    if not text.isdigit() or len(text) > 12:
        raise BadFilter(f"{label}: {text[:40]!r} is not a number")
    return int(text)


def _moment(args: Any, name: str, *, end: bool) -> datetime | None:
    """A UTC time from ``2025-03-01`` or ``2025-03-01T12:00``; a date alone as the end of a window
    means the end of that day."""
    text = _one(args, name)
    if not text:
        return None
    try:
        if len(text) == 10:
            day = datetime.combine(datetime.strptime(text, "%Y-%m-%d").date(), time(), UTC)
            return day + timedelta(days=1) if end else day
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadFilter(f"{name}: {text[:40]!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _format_moment(moment: datetime, *, end: bool = False) -> str:
    """As `_moment` reads it back: a midnight end is the day before, given as a date."""
    if moment.time() != time():
        return moment.strftime("%Y-%m-%dT%H:%M:%S")
    return (moment - timedelta(days=1) if end else moment).strftime("%Y-%m-%d")


def pattern_clause(column: InstrumentedAttribute[Any], pattern: str) -> ColumnElement[bool]:
    """A prefix, or a pattern with ``*`` (any run) and ``?`` (one character). The literal start is
    also a range on the column, which an index walks (LIKE alone is not indexed on SQLite); the range
    makes the start case-sensitive on both databases."""
    like = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = like.replace("*", "%").replace("?", "_")
    wild = any(c in pattern for c in "*?")
    clause: ColumnElement[bool] = column.like(like if wild else like + "%", escape="\\")
    prefix = pattern[: min((pattern.index(c) for c in "*?" if c in pattern), default=len(pattern))]
    if prefix:
        clause = and_(column >= prefix, column < prefix[:-1] + chr(ord(prefix[-1]) + 1), clause)
    return clause


_NAME_FTS = table("task_name_fts", column("rowid"), column("name"))


def _name(f: TaskFilter) -> ColumnElement[bool]:
    """The name pattern; a pattern that starts with a wildcard is also restricted to the candidates
    of the trigram index when that is the shorter way (PostgreSQL's planner decides by itself)."""
    clause = pattern_clause(Task.name, f.q)
    candidates = name_candidates(f.q)
    return clause if candidates is None else and_(Task.id.in_(candidates), clause)


def name_candidates(pattern: str) -> Select[Any] | None:
    """On SQLite, the ids of the names the FTS5 trigram table matches for a pattern that starts with
    a wildcard and holds a literal run of three characters, when at most NAME_CANDIDATES_MAX do; else
    None. The candidates are exactly the matches (GLOB is case-sensitive ``*`` and ``?``), and the
    pattern's own clause stays beside them. The probe is asked once per session and pattern."""
    if pattern[:1] not in ("*", "?") or not any(c in pattern for c in "*?"):
        return None
    runs = pattern.replace("?", "*").split("*")
    if max(len(run) for run in runs) < 3 or db.session.get_bind().dialect.name != "sqlite":
        return None
    glob = pattern.replace("[", "[[]")
    probes = db.session.info.setdefault("name_candidates", {})
    if glob not in probes:
        first = select(_NAME_FTS.c.rowid).where(_NAME_FTS.c.name.op("GLOB")(glob))
        probes[glob] = db.session.scalar(select(func.count()).select_from(first.limit(NAME_CANDIDATES_MAX + 1).subquery())) or 0
    if probes[glob] > NAME_CANDIDATES_MAX:
        return None
    return select(_NAME_FTS.c.rowid).where(_NAME_FTS.c.name.op("GLOB")(glob))


def _window(column: InstrumentedAttribute[Any], window: TimeWindow) -> ColumnElement[bool]:
    parts = []
    if window.start is not None:
        parts.append(column >= window.start)
    if window.end is not None:
        parts.append(column < window.end)
    return and_(true(), *parts)


def _window_of(name: str) -> Callable[[TaskFilter], ColumnElement[bool]]:
    return lambda f: _window(_TIME_COLUMNS[name], getattr(f, name))


def _status(f: TaskFilter) -> ColumnElement[bool]:
    named = [s for s in f.status if s != NO_STATUS]
    clause = Task.panda_status.in_(named) if named else false()
    return or_(clause, Task.panda_status.is_(None)) if NO_STATUS in f.status else clause


def _launch(f: TaskFilter) -> ColumnElement[bool]:
    attempts = aliased(Launch)
    latest = select(func.max(attempts.id)).where(attempts.task_id == Launch.task_id).scalar_subquery()
    return Task.launches.any((Launch.id == latest) & (Launch.status == f.launch))


def _request(f: TaskFilter) -> ColumnElement[bool]:
    """The tasks a request counts, as its page does (``request_clause``)."""
    assert f.request is not None
    return request_clause(f.request)


_CLAUSES = {
    "status": _status,
    "step": lambda f: Task.step.in_(f.step),
    "creator": lambda f: Task.created_by_id.in_(select(User.id).where(User.username == f.creator)),
    "mine": lambda f: Task.created_by_id == f.user_id if f.user_id is not None else false(),
    "q": _name,
    "panda_id": lambda f: Task.panda_task_id.in_(f.panda_id),
    "request": _request,
    "dataset": lambda f: pattern_clause(Task.output_dataset, f.dataset),
    "bunch": lambda f: Task.bunch_id == f.bunch,
    "chain": lambda f: Task.bunch_id.in_(select(ChainStep.bunch_id).where(ChainStep.chain_id == f.chain)),
    "cloud": lambda f: Task.cloud == f.cloud,
    "launch": _launch,
    **{name: _window_of(name) for name in TIME_FIELDS},
}
FILTER_NAMES: tuple[str, ...] = tuple(f.name for f in fields(TaskFilter) if f.name in _CLAUSES)


def _parameters_of(declared: Any, hint: Any) -> list[QueryParameter]:
    meta = declared.metadata
    name, text, choices = meta["key"] or declared.name, meta["description"], meta["choices"]
    if hint is TimeWindow:
        return [QueryParameter(f"{name}_from", f"{text} at or after this time (a date: from its start)", "date-time"),
                QueryParameter(f"{name}_to", f"{text} before this time (a date: up to its end)", "date-time")]  # fmt: skip
    if declared.name == "negated":
        return [QueryParameter(name, text, "string", True, FILTER_NAMES)]
    args = typing.get_args(hint)
    repeated = typing.get_origin(hint) is tuple
    base = args[0] if repeated else next((a for a in args if a is not type(None)), hint)
    kind = {str: "string", int: "integer", bool: "boolean"}[base]
    return [QueryParameter(name, text, kind, repeated, choices)]


def _query_parameters() -> tuple[QueryParameter, ...]:
    hints = typing.get_type_hints(TaskFilter)
    return tuple(p for f in fields(TaskFilter) if "description" in f.metadata for p in _parameters_of(f, hints[f.name]))


# The query-string keys the filter reads, made from its fields' declaration (the API's OpenAPI
# parameters, the CLI's options and the bulk form's fields are made of these).
QUERY_PARAMETERS: tuple[QueryParameter, ...] = _query_parameters()
QUERY_KEYS: tuple[str, ...] = tuple(p.name for p in QUERY_PARAMETERS)
