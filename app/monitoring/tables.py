"""The task tables: the current tasks and the successful (done or finished) tasks. Their columns,
sorting on every column both ways, keyset paging (a page after or before a row, the last page) with
shallow numbered pages, capped counts ("10 000+"), counts per status and the successful totals.

Every sort is a (column, id) index walk: the page after a row starts where that row's key left off,
so a deep page costs what the first one does. NULLs sort lowest on both databases (first going up,
last going down): SQLite's own order, and the one PostgreSQL's sort indexes are built in.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, Select, and_, func, literal, literal_column, select, true, tuple_
from sqlalchemy.orm import defer

from app.actions.matrix import STATUSES
from app.db import UTCDateTime
from app.extensions import capped, capped_text, count_cap, db
from app.monitoring.filters import NO_STATUS, BadFilter, TaskFilter
from app.stats.models import ALL_DAYS, StatSplit
from app.tasks.models import Task

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
MAX_OFFSET = 10_000  # numbered pages reach this far; deeper pages go by keyset (Next / Last)
SUCCESSFUL = ("done", "finished")


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    sort: tuple[Any, ...]  # the sort expressions before the id; () = the id alone
    nullable: bool = True
    total: Any = None  # the SQL aggregate of the successful table's totals row


@dataclass(frozen=True)
class Table:
    name: str  # "tasks" or "successful": the preference key and the export's file name
    columns: tuple[Column, ...]
    default_columns: tuple[str, ...]
    default_sort: str
    base: tuple[ColumnElement[bool], ...] = ()  # conditions of the table itself

    def column(self, key: str) -> Column:
        for col in self.columns:
            if col.key == key:
                return col
        raise BadFilter(f"unknown column: {key[:40]!r}")

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(col.key for col in self.columns)


def _col(key: str, label: str, *sort: Any, nullable: bool = True, total: Any = None) -> Column:
    return Column(key, label, sort, nullable, total)


CURRENT = Table(
    "tasks",
    (
        _col("panda_id", "Task ID", Task.panda_task_id),
        _col("name", "Task name", Task.production, Task.step, Task.bunch_index, nullable=False),
        _col("parent", "Parent ID", Task.parent_id),
        _col("creator", "Creator", Task.created_by_id),
        _col("status", "Status", Task.panda_status),
        _col("jobs_done", "Done jobs", Task.jobs_done),
        _col("priority_default", "Default priority", Task.priority_default),
        _col("priority_current", "Current priority", Task.priority_current),
        _col("events_total", "Total events", Task.events_requested),
        _col("events_done", "Events done", Task.events_processed),
        _col("progress", "Progress", Task.progress),
        _col("step", "Step", Task.step, nullable=False),
        _col("request", "Request", Task.request_id),
        _col("bunch", "Bunch / chain", Task.bunch_id, nullable=False),
        _col("cloud", "Cloud", Task.cloud),
        _col("submitted_at", "Submit time", Task.submitted_at),
        _col("started_at", "Start time", Task.started_at),
        _col("ended_at", "End time", Task.ended_at),
        _col("created", "Created", nullable=False),
    ),
    ("panda_id", "name", "parent", "creator", "status", "jobs_done", "priority_default", "priority_current",
     "events_total", "events_done", "progress", "bunch", "submitted_at", "started_at", "ended_at"),
    "created",
)  # fmt: skip

SUCCESSFUL_TABLE = Table(
    "successful",
    (
        _col("panda_id", "Task ID", Task.panda_task_id),
        _col("name", "Task name", Task.production, Task.step, Task.bunch_index, nullable=False),
        _col("status", "Status", Task.panda_status),
        _col("started_at", "Start date", Task.started_at),
        _col("ended_at", "End date", Task.ended_at),
        _col("walltime", "Walltime", Task.walltime_s, total=func.sum(Task.walltime_s)),
        _col("events_done", "Total events", Task.events_processed, total=func.sum(Task.events_processed)),
        _col("events_per_job", "Events per job", Task.events_per_job),
        _col("jobs_total", "Total jobs", Task.jobs_total, total=func.sum(Task.jobs_total)),
        _col("output_gb", "Output size (GB)", Task.output_bytes, total=func.sum(Task.output_bytes)),
        _col("log_gb", "Log size (GB)", Task.log_bytes, total=func.sum(Task.log_bytes)),
    ),
    ("panda_id", "name", "status", "started_at", "ended_at", "walltime", "events_done", "events_per_job",
     "jobs_total", "output_gb", "log_gb"),
    "ended_at",
    (Task.panda_status.in_(SUCCESSFUL),),
)  # fmt: skip

TABLES = {table.name: table for table in (CURRENT, SUCCESSFUL_TABLE)}
# The columns `totals` sums, named as the task record names them (walltime -> walltime_s …).
TOTALS_FIELDS = {col.key: col.sort[0].key for col in SUCCESSFUL_TABLE.columns if col.total is not None}


@dataclass(frozen=True)
class TableState:
    """Everything of a table's URL besides the filter: sort, order, page size, position, columns."""

    sort: str
    order: str = "desc"
    size: int = DEFAULT_PAGE_SIZE
    after: str = ""  # the cursor of the row this page follows
    before: str = ""  # the cursor of the row this page precedes
    last: bool = False
    page: int = 1  # numbered pages (offset), while shallow
    columns: tuple[str, ...] = ()  # from the URL (``cols``); () = the user's choice

    @classmethod
    def from_args(cls, table: Table, args: Any) -> TableState:
        sort = str(args.get("sort") or table.default_sort)
        table.column(sort)
        order = str(args.get("order") or "desc")
        if order not in ("asc", "desc"):
            raise BadFilter("order: asc or desc")
        size = _number(args, "size", DEFAULT_PAGE_SIZE)
        if size not in PAGE_SIZES:
            raise BadFilter(f"size: one of {', '.join(map(str, PAGE_SIZES))}")
        page = _number(args, "page", 1)
        if page < 1 or (page - 1) * size > MAX_OFFSET:
            raise BadFilter(f"page: 1 to {MAX_OFFSET // size + 1}; go further with Next or Last")
        cols = tuple(c for c in str(args.get("cols") or "").split(",") if c)
        for key in cols:
            table.column(key)
        after, before = str(args.get("after") or ""), str(args.get("before") or "")
        return cls(sort, order, size, after, before, str(args.get("last") or "") == "1", page, cols)

    def to_args(self, table: Table) -> list[tuple[str, str]]:
        """The non-default parts, for links that keep them (position left out)."""
        out = []
        if self.sort != table.default_sort:
            out.append(("sort", self.sort))
        if self.order != "desc":
            out.append(("order", self.order))
        if self.size != DEFAULT_PAGE_SIZE:
            out.append(("size", str(self.size)))
        if self.columns:
            out.append(("cols", ",".join(self.columns)))
        return out


def _number(args: Any, name: str, default: int) -> int:
    text = str(args.get(name) or "")
    if not text:
        return default
    if not text.isdigit() or len(text) > 9:
        raise BadFilter(f"{name}: {text[:40]!r} is not a number")
    return int(text)


# --- keyset paging ------------------------------------------------------------------------------


def _exprs(col: Column) -> list[Any]:
    return [*col.sort, Task.id]


def encode_cursor(values: Sequence[Any]) -> str:
    plain = [{"t": v.isoformat()} if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(col: Column, text: str) -> list[Any]:
    """The key values of a cursor, checked against the sort column's types; BadFilter if malformed."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        raise BadFilter("malformed page position; start from the first page") from None
    exprs = _exprs(col)
    if not isinstance(raw, list) or len(raw) != len(exprs):
        raise BadFilter("malformed page position; start from the first page")
    out = []
    for expr, value in zip(exprs, raw, strict=True):
        out.append(_typed(expr, value))
    if out[-1] is None:
        raise BadFilter("malformed page position; start from the first page")
    return out


def _typed(expr: Any, value: Any) -> Any:
    kind = expr.type
    bad = BadFilter("malformed page position; start from the first page")
    if value is None:
        return None
    if isinstance(kind, UTCDateTime):
        if not isinstance(value, dict) or not isinstance(value.get("t"), str):
            raise bad
        try:
            return datetime.fromisoformat(value["t"])
        except ValueError:
            raise bad from None
    if isinstance(kind, Float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return float(value)
    python = kind.python_type
    if python is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise bad
    if python is str and not isinstance(value, str):
        raise bad
    return value


def ordered(query: Select[Any], sort: str, order: str, table: Table | None = None) -> Select[Any]:
    """`query` in the order of a table's column (BadFilter for an unknown column or order)."""
    if order not in ("asc", "desc"):
        raise BadFilter("order: asc or desc")
    return _ordered(query, (table or CURRENT).column(sort), order == "asc")


def _ordered(query: Select[Any], col: Column, ascending: bool) -> Select[Any]:
    """NULLs lowest (app/db.py NullsLow). A NOT NULL column says nothing: PostgreSQL matches an index
    to the NULL order asked for, and those indexes are plain."""
    exprs = [e.asc() if ascending else e.desc() for e in _exprs(col)]
    if col.nullable:
        exprs = [e.nulls_first() if ascending else e.nulls_last() for e in exprs[:-1]] + exprs[-1:]
    return query.order_by(*exprs)


def _segments(col: Column, ascending: bool, key: list[Any] | None) -> list[ColumnElement[bool]]:
    """The conditions of the rows after `key` in this order, in order, each walked by the index."""
    exprs = _exprs(col)
    nullable = col.nullable and len(exprs) == 2  # NULLs lowest (_ordered): first going up
    if key is None:
        return [true()]
    if nullable and key[0] is None:
        sort, ident = exprs
        following = ident > key[1] if ascending else ident < key[1]
        segments = [and_(sort.is_(None), following)]
        return segments + ([sort.is_not(None)] if ascending else [])
    row, at = tuple_(*exprs), tuple_(*key)
    segments = [row > at if ascending else row < at]  # NULL keys compare unknown: left out
    return segments + ([exprs[0].is_(None)] if nullable and not ascending else [])


def _fetch(query: Select[Any], col: Column, ascending: bool, key: list[Any] | None, limit: int) -> list[Any]:
    rows: list[Any] = []
    for segment in _segments(col, ascending, key):
        if len(rows) >= limit:
            break
        rows += db.session.execute(_ordered(query.where(segment), col, ascending).limit(limit - len(rows))).all()
    return rows


@dataclass
class Page:
    ids: list[int]  # the page's task ids, in its order (the tasks and records are read by the service)
    has_prev: bool
    has_next: bool
    first_cursor: str = ""
    last_cursor: str = ""
    offset: int | None = None  # the first row's position when known (numbered pages)
    total: int = 0  # capped at COUNT_CAP + 1
    extra: dict[str, Any] = field(default_factory=dict)
    tasks: list[Task] = field(default_factory=list)  # the page's tasks, in its order, read by the service

    @property
    def total_text(self) -> str:
        return capped_text(self.total)


def conditions(table: Table, task_filter: TaskFilter) -> list[ColumnElement[bool]]:
    return [*table.base, *task_filter.clauses()]


def page_of(table: Table, task_filter: TaskFilter, state: TableState) -> Page:
    """One page of the table: after or before a row, the last page, or a numbered page."""
    col = table.column(state.sort)
    exprs = _exprs(col)
    where = conditions(table, task_filter)
    total = capped_count(where)
    query = select(Task.id, *(e.label(f"k{i}") for i, e in enumerate(exprs))).where(*walked(where, total))
    ascending = state.order == "asc"
    n = state.size
    offset: int | None = None
    if state.before or state.last:
        key = decode_cursor(col, state.before) if state.before else None
        rows = _fetch(query, col, not ascending, key, n + 1)
        has_prev, has_next = len(rows) > n, bool(state.before)
        rows = rows[:n][::-1]
    elif state.after:
        rows = _fetch(query, col, ascending, decode_cursor(col, state.after), n + 1)
        has_prev, has_next = True, len(rows) > n
        rows = rows[:n]
    else:
        offset = (state.page - 1) * n
        rows = list(db.session.execute(_ordered(query, col, ascending).offset(offset).limit(n + 1)))
        has_prev, has_next = state.page > 1, len(rows) > n
        rows = rows[:n]
    first, last = (encode_cursor(rows[0][1:]), encode_cursor(rows[-1][1:])) if rows else ("", "")
    return Page([row[0] for row in rows], has_prev, has_next, first, last, offset, total)


def walked(where: Sequence[ColumnElement[bool]], total: int) -> list[ColumnElement[bool]]:
    """The conditions of a page whose filter matches `total` rows (capped). When it matches more than
    COUNT_CAP (one row in a hundred at a million), SQLite is told that they hold for most rows
    (``likelihood``), so that it walks the sort's index and stops at the page's end instead of reading
    every matching row through a filter's index and sorting them: the page then costs what the first
    one does. (SQLite's statistics say how many rows a value has, not that a page needs few of them;
    PostgreSQL plans with the LIMIT.) Each sort index ends with the PanDA status, so that a status
    filter is checked in the index before a row is read."""
    if total <= count_cap() or db.session.get_bind().dialect.name != "sqlite":
        return list(where)
    return [func.likelihood(clause, literal_column("0.9")) for clause in where]


def capped_count(where: Sequence[ColumnElement[bool]]) -> int:
    """How many rows match, counted up to COUNT_CAP + 1 only."""
    return db.session.scalar(capped(select(Task.id).where(*where))) or 0


def status_counts(table: Table, task_filter: TaskFilter) -> list[tuple[str, int]]:
    """Capped counts per PanDA status of the rows the filter matches, its status part left out (so
    that the counts show where the other filters' rows are); statuses without rows left out. With no
    other filter, the statuses PanDA gave are read from the summary the sync keeps (a row per status:
    one statement whatever the number of tasks), the tasks not in PanDA yet counted in their index."""
    others = task_filter.without_status()
    where = conditions(table, others)
    names = [*STATUSES, NO_STATUS] if table is CURRENT else list(SUCCESSFUL)
    if others.is_empty():
        return _summary_counts(names)
    counts = [
        capped(
            select(Task.id).where(
                *where, Task.panda_status.is_(None) if name == NO_STATUS else Task.panda_status == name
            )
        ).scalar_subquery()
        for name in names
    ]
    row = db.session.execute(select(*counts)).one()  # one statement: each count walks its index range
    return [(name, count) for name, count in zip(names, row, strict=True) if count]


def _summary_counts(names: list[str]) -> list[tuple[str, int]]:
    """The unfiltered counts of `names`, as capped as a filter's (COUNT_CAP + 1 at most)."""
    known = (
        select(StatSplit.key, StatSplit.tasks)
        .where(StatSplit.dimension == "status", StatSplit.day == ALL_DAYS, StatSplit.key.in_(names))
    )  # fmt: skip
    unsent = capped(select(Task.id).where(Task.panda_status.is_(None))).scalar_subquery()
    counted = select(literal(NO_STATUS), unsent)
    statement = known.union_all(counted) if NO_STATUS in names else known
    found: dict[str, int] = {key: n for key, n in db.session.execute(statement)}
    return [(name, min(found[name], count_cap() + 1)) for name in names if found.get(name)]


def totals(table: Table, task_filter: TaskFilter) -> dict[str, Any]:
    """The totals row of the successful table. Unfiltered, or filtered by its statuses alone, it is read
    from the summary the sync keeps per PanDA status (`stat_split`, app/stats/summary.py): a row per
    status, however many tasks succeeded. Any other filter is summed in SQL over the tasks it matches
    (exact, at the cost of what it matches: a request's or a bunch's tasks, a creator's …)."""
    cols = [col for col in table.columns if col.total is not None]
    statuses = _summarised_statuses(table, task_filter)
    if statuses is None:
        row = db.session.execute(
            select(func.count(), *(col.total for col in cols)).where(*conditions(table, task_filter))
        ).one()
    else:
        row = db.session.execute(
            select(*(func.sum(getattr(StatSplit, name)) for name in ("tasks", *(SUMMARISED[c.key] for c in cols))))
            .where(StatSplit.dimension == "status", StatSplit.day == ALL_DAYS, StatSplit.key.in_(statuses))
        ).one()
    # int(): PostgreSQL sums big integers as numeric (Decimal). No task: no sums (None), as SQL's.
    tasks = int(row[0] or 0)
    sums = {col.key: int(row[i + 1]) if tasks and row[i + 1] is not None else None for i, col in enumerate(cols)}
    out: dict[str, Any] = {"tasks": tasks, **sums}
    jobs, events = out.get("jobs_total"), out.get("events_done")
    out["events_per_job"] = round(events / jobs, 1) if jobs and events is not None else None
    return out


# The summary's column of each column the totals row sums (app/stats/summary.py VALUES).
SUMMARISED = {"walltime": "walltime_s", "events_done": "events", "jobs_total": "jobs_total",
              "output_gb": "output_bytes", "log_gb": "log_bytes"}  # fmt: skip


def _summarised_statuses(table: Table, task_filter: TaskFilter) -> list[str] | None:
    """The successful statuses a filter of statuses alone keeps (negated or not); None when it filters
    on anything else, or for another table."""
    if table is not SUCCESSFUL_TABLE:
        return None
    if not task_filter.without_status().is_empty():
        return None
    chosen = set(task_filter.status)
    if "status" in task_filter.negated:
        return [s for s in SUCCESSFUL if s not in chosen]
    return [s for s in SUCCESSFUL if s in chosen] if chosen else list(SUCCESSFUL)


def export_batch(
    table: Table, task_filter: TaskFilter, state: TableState, key: list[Any] | None, batch: int = 1000
) -> tuple[list[Task], list[Any] | None]:
    """One batch of an export in the table's order, after the row whose sort key is `key` (None: from
    the start); returns the tasks and the key to go on from (None after the last batch)."""
    col = table.column(state.sort)
    exprs = _exprs(col)
    where = conditions(table, task_filter)
    query = select(Task.id, *(e.label(f"k{i}") for i, e in enumerate(exprs))).where(
        *walked(where, capped_count(where))
    )
    rows = _fetch(query, col, state.order == "asc", key, batch)
    return _tasks(row[0] for row in rows), (list(rows[-1][1:]) if len(rows) == batch else None)


def _tasks(ids: Iterable[int]) -> list[Task]:
    """The tasks of a page, in its order. The page's order is walked for the ids and sort keys alone
    (what the sort index holds, with the status: the database need not read a row it passes over);
    the page's rows are then read by primary key."""
    order = list(ids)
    found = db.session.scalars(select(Task).options(defer(Task.spec), defer(Task.params)).where(Task.id.in_(order)))
    by_id = {t.id: t for t in found}
    return [by_id[i] for i in order if i in by_id]
