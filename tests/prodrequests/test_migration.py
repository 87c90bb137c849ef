"""Migration 0025: a chain's task that names no request gets its chain's in `task.request_id` (the
first step whose bunch names one); a task naming its own, or outside a chain, keeps what it had; the
downgrade gives back what each task's spec names (SQLite and PostgreSQL)."""

import json

from alembic import command
from sqlalchemy import text

from app import migrate

T = "'2026-01-01 00:00:00'"
CHAINS = {  # chain id -> the request each step's bunch (and its tasks' spec) names, in step order
    1: (3, None),  # RECO inherits 3
    2: (None, 4),  # a later step names it: the SIM inherits 4
    3: (None, None),  # no request: stays without
    4: (5, 6),  # each keeps its own (a chain made before one request per chain was checked)
    5: (None, 7, None),  # both unnamed steps inherit 7
}
ALONE = 9  # a bunch of no chain naming none: stays without
EXPECTED = {1: (3, 3), 2: (4, 4), 3: (None, None), 4: (5, 6), 5: (7, 7, 7)}


def _seed(conn) -> dict[int, list[int]]:
    """The chains and a bunch outside any chain, two tasks per bunch; bunch id -> its task ids."""
    conn.execute(text(f"INSERT INTO \"user\" (id, username, display_name, email, role, active, iss, sub, created_at) "
                      f"VALUES (1, 'm', 'M', '', 'manager', true, 'local', 'm', {T})"))  # fmt: skip
    tasks: dict[int, list[int]] = {}

    def bunch(bunch_id: int, request: int | None) -> None:
        named = json.dumps({"request_id": request})
        conn.execute(text("INSERT INTO task_bunch (id, idempotency_key, base_name, step, size, definition, comment, "
                          f"created_by_id, created_at) VALUES (:i, :k, :b, 'SIM', 2, :d, '', 1, {T})"),
                     {"i": bunch_id, "k": f"k{bunch_id}", "b": f"B{bunch_id}", "d": named})  # fmt: skip
        for index in (1, 2):
            task_id = 2 * bunch_id + index
            conn.execute(text("INSERT INTO task (id, bunch_id, bunch_index, name, output_dataset, step, production, "
                              f"spec, params, created_at, request_id) VALUES (:i, :b, :n, :name, :ds, 'SIM', 'P', "
                              f":spec, '{{}}', {T}, :r)"),
                         {"i": task_id, "b": bunch_id, "n": index, "name": f"T{task_id}", "ds": f"D{task_id}",
                          "spec": named, "r": request})  # fmt: skip
            tasks.setdefault(bunch_id, []).append(task_id)

    for chain_id, requests in CHAINS.items():
        conn.execute(text("INSERT INTO chain (id, idempotency_key, name, processing_type, definition, "
                          f"wait_for_parent_done, comment, created_at) VALUES (:i, :k, :n, 'MC', '{{}}', false, '', {T})"),
                     {"i": chain_id, "k": f"c{chain_id}", "n": f"C{chain_id}"})  # fmt: skip
        for position, request in enumerate(requests, 1):
            bunch_id = 10 * chain_id + position
            bunch(bunch_id, request)
            conn.execute(text("INSERT INTO chain_step (chain_id, position, step, bunch_id) VALUES (:c, :p, 'SIM', :b)"),
                         {"c": chain_id, "p": position, "b": bunch_id})  # fmt: skip
    bunch(ALONE, None)
    return tasks


def _requests(engine, tasks: dict[int, list[int]]) -> dict[int, tuple[int | None, ...]]:
    """chain id -> the request_id of its steps' tasks (both tasks of a step must agree), and ALONE's."""
    with engine.connect() as conn:
        found = dict(conn.execute(text("SELECT id, request_id FROM task")).all())
    by_bunch = {}
    for bunch_id, ids in tasks.items():
        assert found[ids[0]] == found[ids[1]], bunch_id
        by_bunch[bunch_id] = found[ids[0]]
    out = {c: tuple(by_bunch[10 * c + p] for p in range(1, len(r) + 1)) for c, r in CHAINS.items()}
    return out | {ALONE: (by_bunch[ALONE],)}


def _check(engine) -> None:
    migrate.upgrade(engine, "0024_sort_nulls_low")
    with engine.begin() as conn:
        tasks = _seed(conn)
    migrate.upgrade(engine)
    assert _requests(engine, tasks) == EXPECTED | {ALONE: (None,)}
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0024_sort_nulls_low")
    assert _requests(engine, tasks) == CHAINS | {ALONE: (None,)}
    migrate.upgrade(engine)  # and up again
    assert _requests(engine, tasks) == EXPECTED | {ALONE: (None,)}


def test_on_both_databases(empty_engine):
    _check(empty_engine)
