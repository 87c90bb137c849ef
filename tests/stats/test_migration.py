"""Migration 0020: `stat_day` is dropped (the splits it fed stay as they were); the downgrade
recreates it summed from the tasks as the older code's rebuild did (SQLite and PostgreSQL)."""

from alembic import command
from sqlalchemy import inspect, text

from app import migrate

T = "'2026-01-01 00:00:00'"
TASKS = [  # panda status, ended, submitted, created, request, creator, jobs done, failed, events, bytes, walltime
    ("done", "2026-03-02 23:59:00", "2026-03-01 10:00:00", T[1:-1], 7, 1, 10, 1, 1000, 5, 60),
    ("done", "2026-03-02 00:00:00", "2026-03-01 11:00:00", T[1:-1], 7, 1, 20, 2, 2000, 6, 70),  # same row
    ("running", None, "2026-03-03 08:00:00", T[1:-1], None, 1, 3, None, None, None, None),  # no request
    ("failed", None, None, "2026-03-04 05:00:00", 8, None, 0, 4, 0, 0, 9),  # no creator, day it was made
    (None, None, None, T[1:-1], 7, 1, None, None, None, None, None),  # PanDA does not know it: not counted
]
EXPECTED = {
    ("2026-03-02", "SIM", "done", 7, 1, 2, 30, 3, 3000, 11, 130),
    ("2026-03-03", "SIM", "running", 0, 1, 1, 3, 0, 0, 0, 0),
    ("2026-03-04", "SIM", "failed", 8, 0, 1, 0, 4, 0, 0, 9),
}
SPLIT = "('all', '0001-01-01', '', 4, 33, 7, 3000, 11, 139)"


def _seed(conn) -> None:
    conn.execute(text(f"INSERT INTO \"user\" (id, username, display_name, email, role, active, iss, sub, created_at) "
                      f"VALUES (1, 'm', 'M', '', 'manager', true, 'local', 'm', {T})"))  # fmt: skip
    conn.execute(text("INSERT INTO task_bunch (id, idempotency_key, base_name, step, size, definition, comment, "
                      f"created_by_id, created_at) VALUES (1, 'k', 'PROD2025-001.SIM', 'SIM', 5, '{{}}', '', 1, {T})"))  # fmt: skip
    for i, (status, ended, submitted, created, request, creator, *values) in enumerate(TASKS, 1):
        conn.execute(
            text("INSERT INTO task (id, bunch_id, bunch_index, name, output_dataset, step, production, spec, params, "
                 "panda_status, ended_at, submitted_at, created_at, request_id, created_by_id, jobs_done, "
                 "jobs_failed, events_processed, output_bytes, walltime_s) VALUES (:i, 1, :i, :name, :ds, 'SIM', "
                 "'PROD2025-001', '{}', '{}', :status, :ended, :submitted, :created, :request, :creator, :v0, :v1, "
                 ":v2, :v3, :v4)"),
            {"i": i, "name": f"T.{i}", "ds": f"D.{i}", "status": status, "ended": ended, "submitted": submitted,
             "created": created, "request": request, "creator": creator} | {f"v{n}": v for n, v in enumerate(values)},
        )  # fmt: skip
    conn.execute(text(f"INSERT INTO stat_split VALUES {SPLIT}"))


def _check(engine) -> None:
    migrate.upgrade(engine, "0019_stat_split")
    with engine.begin() as conn:
        _seed(conn)
    migrate.upgrade(engine, "0020_drop_stat_day")  # not beyond: 0025 sums the split by request again
    assert "stat_day" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT tasks, walltime_s FROM stat_split")).all() == [(4, 139)]
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0019_stat_split")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM stat_day")).all()
        assert {(str(r[0]), *r[1:]) for r in rows} == EXPECTED  # SQLite reads the day as text
        assert conn.execute(text("SELECT tasks FROM stat_split")).all() == [(4,)]
    migrate.upgrade(engine)  # and up again
    assert "stat_day" not in inspect(engine).get_table_names()


def test_on_both_databases(empty_engine):
    _check(empty_engine)


# Migration 0021: the splits gain the tasks' total jobs and log bytes, summed from the tasks.
SPLIT_0020 = [  # dimension, day, key, tasks (the other values left 0: the migration adds its two only)
    ("all", "0001-01-01", "", 4), ("all", "2026-03-02", "", 2), ("status", "0001-01-01", "done", 2),
    ("status", "2026-03-04", "failed", 1), ("user", "0001-01-01", "0", 1), ("user", "0001-01-01", "1", 3),
    ("request", "0001-01-01", "7", 2), ("request", "2026-03-03", "0", 1), ("step", "0001-01-01", "SIM", 4),
]  # fmt: skip
JOBS_LOGS = [(100, 1), (200, 2), (30, 40), (5, None), (7, 7)]  # jobs_total, log_bytes of TASKS
EXPECTED_0021 = {
    ("all", "0001-01-01", ""): (335, 43), ("all", "2026-03-02", ""): (300, 3),
    ("status", "0001-01-01", "done"): (300, 3), ("status", "2026-03-04", "failed"): (5, 0),
    ("user", "0001-01-01", "0"): (5, 0), ("user", "0001-01-01", "1"): (330, 43),
    ("request", "0001-01-01", "7"): (300, 3), ("request", "2026-03-03", "0"): (30, 40),
    ("step", "0001-01-01", "SIM"): (335, 43),
}


def _check_0021(engine) -> None:
    migrate.upgrade(engine, "0020_drop_stat_day")
    with engine.begin() as conn:
        _seed(conn)
        conn.execute(text("DELETE FROM stat_split"))
        for i, (jobs, logs) in enumerate(JOBS_LOGS, 1):
            conn.execute(text("UPDATE task SET jobs_total = :j, log_bytes = :l WHERE id = :i"), {"j": jobs, "l": logs, "i": i})
        for dimension, day, key, tasks in SPLIT_0020:
            conn.execute(text("INSERT INTO stat_split VALUES (:d, :day, :k, :t, 0, 0, 0, 0, 0)"),
                         {"d": dimension, "day": day, "k": key, "t": tasks})  # fmt: skip
    migrate.upgrade(engine, "0021_summary_jobs_logs")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT dimension, day, key, jobs_total, log_bytes FROM stat_split")).all()
    assert {(d, str(day), k): (j, lb) for d, day, k, j, lb in rows} == EXPECTED_0021
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0020_drop_stat_day")
    assert "jobs_total" not in {c["name"] for c in inspect(engine).get_columns("stat_split")}
    migrate.upgrade(engine)


def test_on_both_databases_0021(empty_engine):
    _check_0021(empty_engine)
