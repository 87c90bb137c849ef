"""The task tables as pages and exports: a table's page from a query string, the columns each user
chose ("Select field"), and CSV / JSON exports of every matching task. These functions flush, never
commit; BadFilter (a 400) for a query string they cannot use."""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from flask import Flask, current_app

from app.auth.models import User
from app.config import get_settings
from app.extensions import capped_text, db
from app.inputs import id_list
from app.monitoring import tables
from app.monitoring.filters import BadFilter, TaskFilter
from app.monitoring.models import UserPreference
from app.monitoring.records import FIELDS, SCHEMA, records_by_id, task_records
from app.monitoring.tables import Column, Page, Table, TableState
from app.sync.services import MAX_POLLED, PandaRows, rows_of

EXPORT_FORMATS = ("csv", "json")


@dataclass
class TableView:
    table: Table
    filter: TaskFilter
    state: TableState
    page: Page
    records: list[dict[str, Any]]
    columns: tuple[Column, ...]  # the columns shown, in the table's order
    totals: dict[str, Any] | None  # the successful table's totals row (`totals_view`), loaded after the page
    polled: PandaRows  # the active rows, refreshed in place

    @property
    def column_keys(self) -> str:
        return ",".join(col.key for col in self.columns)

    @functools.cached_property
    def _pairs(self) -> list[tuple[str, str]]:
        return [*self.filter.to_args(), *self.state.to_args(self.table)]

    def args(self, **changes: Any) -> list[tuple[str, str]]:
        """The query string of this view (filter and state, no position) with `changes` applied
        (a change to None or "" drops that key)."""
        pairs = [(k, v) for k, v in self._pairs if k not in changes]
        return pairs + [(k, str(v)) for k, v in changes.items() if v not in (None, "")]

    def query(self, **changes: Any) -> dict[str, list[str]]:
        """`args` as url_for's keyword arguments (a repeated key as a list)."""
        out: dict[str, list[str]] = {}
        for key, value in self.args(**changes):
            out.setdefault(key, []).append(value)
        return out


def table_of(name: str) -> Table:
    if name not in tables.TABLES:
        raise BadFilter(f"no such table: {name[:40]!r}")
    return tables.TABLES[name]


def parse(table: Table, args: Any, user: User | None) -> tuple[TaskFilter, TableState]:
    """The filter and state of a table's query string."""
    steps = get_settings().tasks.step_types
    return TaskFilter.from_args(args, user_id=user.id if user else None, steps=steps), TableState.from_args(table, args)


def table_view(name: str, args: Any, user: User | None) -> TableView:
    """One page of a table as the query string asks, with the user's columns."""
    table = table_of(name)
    task_filter, state = parse(table, args, user)
    page = tables.page_of(table, task_filter, state)
    keys = state.columns or chosen_columns(table, user)
    columns = tuple(col for col in table.columns if col.key in keys)
    # The page's tasks and all their records show in one statement (by primary key), in its order.
    found, found_records = records_by_id(page.ids)
    by_id = {task.id: (task, record) for task, record in zip(found, found_records, strict=True)}
    rows = [by_id[i] for i in page.ids if i in by_id]
    page.tasks = [task for task, _ in rows]
    return TableView(table, task_filter, state, page, [record for _, record in rows], columns, None, rows_of(page.tasks))


def totals_view(args: Any, user: User | None) -> TableView:
    """The successful table's totals row for its query string, in the user's columns: a sum over every
    matching task, so it is loaded after the page (the page itself reads one page of rows)."""
    table = tables.SUCCESSFUL_TABLE
    task_filter, state = parse(table, args, user)
    keys = state.columns or chosen_columns(table, user)
    columns = tuple(col for col in table.columns if col.key in keys)
    page = tables.Page([], False, False)
    return TableView(table, task_filter, state, page, [], columns, tables.totals(table, task_filter), rows_of([]))


@dataclass
class RowRefresh:
    """The polled refresh of the current table's active rows: their records in the page's columns."""

    records: list[dict[str, Any]]
    columns: tuple[Column, ...]
    polled: PandaRows  # the rows still active (polled again)

    @property
    def column_keys(self) -> str:
        return ",".join(col.key for col in self.columns)


def row_refresh(args: Any, user: User | None) -> RowRefresh:
    """The rows named by ``ids`` (the page's active rows, at most MAX_POLLED) as the sync stored them,
    in the columns ``cols`` (else the user's), read in one statement; BadFilter for an unknown column."""
    table = tables.CURRENT
    keys = [key for key in str(args.get("cols") or "").split(",") if key]
    for key in keys:
        table.column(key)
    keys = keys or list(chosen_columns(table, user))
    task_list, records = records_by_id(id_list(str(args.get("ids") or ""))[:MAX_POLLED])
    columns = tuple(col for col in table.columns if col.key in keys)
    return RowRefresh(records, columns, rows_of(task_list))


@dataclass(frozen=True)
class StatusCount:
    status: str
    count: int
    text: str  # "10 000+" beyond the cap
    query: dict[str, list[str]]  # the table filtered by this status, the rest kept


def status_counts(name: str, args: Any, user: User | None) -> list[StatusCount]:
    """Capped counts per PanDA status of what the table's other filters match."""
    table = table_of(name)
    task_filter, state = parse(table, args, user)
    out = []
    for status, count in tables.status_counts(table, task_filter):
        narrowed = replace(task_filter.without_status(), status=(status,))
        query: dict[str, list[str]] = {}
        for key, value in [*narrowed.to_args(), *state.to_args(table)]:
            query.setdefault(key, []).append(value)
        out.append(StatusCount(status, count, capped_text(count), query))
    return out


# --- chosen columns -----------------------------------------------------------------------------


def _preference_name(table: Table) -> str:
    return f"columns.{table.name}"


def chosen_columns(table: Table, user: User | None) -> tuple[str, ...]:
    """The columns the user chose for `table`, else the table's default ones."""
    saved = db.session.get(UserPreference, (user.id, _preference_name(table))) if user else None
    keys = tuple(k for k in (saved.value if saved and isinstance(saved.value, list) else []) if k in table.keys)
    return keys or table.default_columns


def save_columns(name: str, keys: list[str], user: User) -> None:
    """Remember the user's columns for a table (none chosen: back to the defaults)."""
    table = table_of(name)
    for key in keys:
        table.column(key)
    row = db.session.get(UserPreference, (user.id, _preference_name(table)))
    if not keys:
        if row is not None:
            db.session.delete(row)
    elif row is None:
        db.session.add(UserPreference(user_id=user.id, name=_preference_name(table), value=list(keys)))
    else:
        row.value = list(keys)
    db.session.flush()


# --- exports --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    chunks: Iterator[str]
    mimetype: str
    filename: str


def export(name: str, fmt: str, args: Any, user: User | None) -> Export:
    """Every task the table's filter matches, in its order, as CSV or JSON (task records, the API's
    schema), written a batch at a time."""
    if fmt not in EXPORT_FORMATS:
        raise BadFilter(f"export format: one of {', '.join(EXPORT_FORMATS)}")
    table = table_of(name)
    task_filter, state = parse(table, args, user)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    batches = _batches(app, table, task_filter, state)
    if fmt == "csv":
        return Export(_csv(batches), "text/csv", f"{table.name}.csv")
    header = {"schema": SCHEMA, "table": table.name, "filter": task_filter.to_args(), "sort": state.sort,
              "order": state.order}  # fmt: skip
    return Export(_json(header, batches), "application/json", f"{table.name}.json")


def _batches(app: Flask, table: Table, task_filter: TaskFilter, state: TableState) -> Iterator[list[dict[str, Any]]]:
    """The records, a batch at a time, each read in an app context of its own that ends before the
    batch is handed on: the response streams after the request, and a client that stops reading
    leaves no context or session open."""
    key: list[Any] | None = None
    while True:
        with app.app_context():
            tasks, key = tables.export_batch(table, task_filter, state, key)
            records = task_records(tasks)
        yield records
        if key is None:
            return


def _csv(batches: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for batch in batches:
        writer.writerows(batch)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _json(header: dict[str, Any], batches: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    yield json.dumps(header)[:-1] + ', "tasks": ['
    first = True
    for batch in batches:
        for record in batch:
            yield ("" if first else ",") + "\n" + json.dumps(record)
            first = False
    yield "\n]}\n"
