"""The task tables' statements as each database plans them: every sort of both tables, both ways and
after a row, walks an index (no sort of the matching rows), and a name search that starts with a
wildcard goes through the trigram index (SQLite's FTS5 table, PostgreSQL's pg_trgm) with the same rows."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event, select, text

from app import extensions
from app.extensions import db
from app.monitoring import tables
from app.monitoring.filters import TaskFilter, name_candidates
from app.monitoring.tables import TABLES, TableState
from app.tasks.models import Task


@contextmanager
def _statements():
    """The ordered SELECTs a block runs, with their parameters."""
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "ORDER BY" in statement:
            seen.append((statement, parameters))

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _plan(statement: str, parameters: object, *, ordered: bool = True) -> str:
    conn = db.session.connection()
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        return "\n".join(str(row[-1]) for row in rows)
    # A table this small would be read whole (and sorted): what is left is the indexes' way, and a
    # sort stays only where no index gives the order. GIN indexes are read by bitmap scans only.
    for kind in ("seqscan", "bitmapscan", "sort") if ordered else ("seqscan",):
        conn.exec_driver_sql(f"SET LOCAL enable_{kind} = off")
    return "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters).all())


def test_every_sort_both_ways_and_after_a_row_walks_an_index(seeded):
    sqlite = db.session.get_bind().dialect.name == "sqlite"
    db.session.execute(text("ANALYZE"))  # the planner's statistics, as the database keeps them (app/jobs.py)
    for table in TABLES.values():
        for col in table.columns:
            for order in ("asc", "desc"):
                first = tables.page_of(table, TaskFilter(), TableState(col.key, order, 25))
                with _statements() as seen:
                    tables.page_of(
                        table, TaskFilter(), TableState(col.key, order, 25, after=first.last_cursor)
                    )
                assert seen, (table.name, col.key)
                for statement, parameters in seen:
                    plan = _plan(statement, parameters)
                    where = f"{table.name}.{col.key} {order}"
                    if sqlite:
                        assert "TEMP B-TREE" not in plan and "USING" in plan, (where, plan)
                    else:
                        assert " Sort " not in f" {plan} " and "Sort Key" not in plan, (where, plan)


def test_a_contains_search_uses_the_trigram_index_and_finds_the_same_rows(seeded):
    sqlite = db.session.get_bind().dialect.name == "sqlite"
    names = dict(db.session.execute(select(Task.id, Task.name)).all())
    for pattern, part in (("*RECO*", "RECO"), ("*.b12.*", ".b12.")):
        expected = sorted(i for i, name in names.items() if part in name)
        assert expected
        f = TaskFilter(q=pattern)
        assert sorted(db.session.scalars(select(Task.id).where(*f.clauses()))) == expected
        assert (name_candidates(pattern) is not None) == sqlite  # PostgreSQL's planner picks pg_trgm itself
        compiled = select(Task.id).where(*f.clauses()).compile(db.session.get_bind())
        positional = tuple(compiled.params[k] for k in compiled.positiontup or ())
        plan = _plan(str(compiled), positional if sqlite else compiled.params, ordered=False)
        assert ("task_name_fts VIRTUAL TABLE INDEX" if sqlite else "ix_task_name_trgm") in plan, plan
    # Too short a literal run for trigrams, or a literal start (walked by the name's range): no probe.
    assert name_candidates("*.b*") is None and name_candidates("PROD*RECO") is None


def test_a_filter_matching_many_rows_walks_the_sort_index_and_pages_the_same(seeded, monkeypatch):
    from werkzeug.datastructures import MultiDict

    from tests.monitoring.test_tables import _walk

    sqlite = db.session.get_bind().dialect.name == "sqlite"
    f = TaskFilter.from_args(MultiDict([("status", "running"), ("step", "SIM")]))
    state = TableState("submitted_at", "asc", 50)
    pages_before = _walk(tables.CURRENT, f, state), _walk(tables.CURRENT, f, state, backwards=True)
    db.session.execute(text("ANALYZE"))
    monkeypatch.setattr(extensions, "COUNT_CAP", 20)  # the filter matches "many" rows now (about 30)
    with _statements() as seen:
        page = tables.page_of(tables.CURRENT, f, state)
    assert page.total == 21
    for statement, parameters in seen:
        plan = _plan(statement, parameters)
        if sqlite:
            assert "TEMP B-TREE" not in plan and "INDEX ix_task_sort_submitted_at" in plan, plan
        else:
            assert "Sort Key" not in plan, plan
    # The same rows in the same order, both ways, whichever way the database walks.
    assert (_walk(tables.CURRENT, f, state), _walk(tables.CURRENT, f, state, backwards=True)) == pages_before


def test_the_final_accounting_reads_its_own_index_not_every_task(seeded):
    """The accounting job's queue (final tasks not accounted) is read from the partial index of the
    tasks not accounted, in its order: not a walk of every task's end date, nor a sort of them."""
    from app.sync.jobs import to_account

    sqlite = db.session.get_bind().dialect.name == "sqlite"
    db.session.execute(text("ANALYZE"))
    with _statements() as seen:
        db.session.scalars(to_account(10)).all()
    [(statement, parameters)] = seen
    plan = _plan(statement, parameters)
    assert "ix_task_to_account" in plan, plan
    if sqlite:
        assert "TEMP B-TREE" not in plan, plan
    else:
        assert "Sort Key" not in plan, plan
