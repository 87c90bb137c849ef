"""Migration 0005: launches awaiting a manager's decision move from "unknown + the INCONCLUSIVE
sentence" to their own status, and back on downgrade (SQLite and PostgreSQL)."""

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app import migrate
from app.launches.dispatcher import INCONCLUSIVE

T = "'2026-01-01 00:00:00'"


def _seed(conn) -> None:
    conn.execute(text(f"INSERT INTO \"user\" (id, username, display_name, email, role, active, iss, sub, created_at) "
                      f"VALUES (1, 'm', 'M', '', 'manager', true, 'local', 'm', {T})"))  # fmt: skip
    conn.execute(text(f"INSERT INTO task_bunch (id, idempotency_key, base_name, step, size, definition, comment, "
                      f"created_at) VALUES (1, 'k', 'PROD2025-001.SIM', 'SIM', 3, '{{}}', '', {T})"))  # fmt: skip
    for i in (1, 2, 3):
        conn.execute(text(f"INSERT INTO task (id, bunch_id, bunch_index, name, output_dataset, step, production, "
                          f"spec, params, created_at) VALUES ({i}, 1, {i}, 'T.{i}', 'D.{i}', 'SIM', 'PROD2025-001', "
                          f"'{{}}', '{{}}', {T})"))  # fmt: skip
    rows = [(1, "unknown", INCONCLUSIVE), (2, "unknown", "timeout after sending"), (3, "failed", "refused")]
    for task_id, status, error in rows:
        conn.execute(
            text("INSERT INTO launch (task_id, idempotency_key, attempt, status, due_at, created_at, error) "
                 f"VALUES (:t, :k, 1, :s, {T}, {T}, :e)"),
            {"t": task_id, "k": f"k:{task_id}:1", "s": status, "e": error},
        )  # fmt: skip


def _statuses(engine) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT task_id, status FROM launch ORDER BY task_id")).all())


def _upgrade_downgrade(engine) -> None:
    migrate.upgrade(engine, "0004_tasks")
    with engine.begin() as conn:
        _seed(conn)
    migrate.upgrade(engine)
    assert _statuses(engine) == {1: "needs_decision", 2: "unknown", 3: "failed"}
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE launch SET status = 'lost' WHERE task_id = 3"))
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0004_tasks")
    assert _statuses(engine) == {1: "unknown", 2: "unknown", 3: "failed"}
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE launch SET status = 'needs_decision' WHERE task_id = 3"))


def test_on_both_databases(empty_engine):
    _upgrade_downgrade(empty_engine)
