"""Migration 0008: SIM/RECO bunches made before chains existed appear as chains (SQLite and
PostgreSQL); a bunch is the step of one chain at most; launches get after_parent_done = false."""

import json

from alembic import command
from sqlalchemy import text

from app import migrate

T = "'2026-01-01 00:00:00'"
BUNCHES = [  # id, base name, step, size, parent bunch (task i reads task i of it)
    (1, "PROD2025-001.SIM", "SIM", 2, None),
    (2, "PROD2025-001.RECO", "RECO", 2, 1),
    (3, "PROD2025-002.SIM", "SIM", 1, None),  # a SIM without a RECO stays a bunch
    (4, "PROD2025-001.RECO", "RECO", 2, 1),  # a second RECO of bunch 1: stays a bunch of its own
]


def _seed(conn) -> None:
    conn.execute(text(f"INSERT INTO \"user\" (id, username, display_name, email, role, active, iss, sub, created_at) "
                      f"VALUES (1, 'm', 'M', '', 'manager', true, 'local', 'm', {T})"))  # fmt: skip
    task_ids: dict[tuple[int, int], int] = {}
    for bunch_id, base, step, size, parent in BUNCHES:
        definition = json.dumps({"step": step, "task_name": base, "bunch_size": size, "comment": "c"})
        conn.execute(text("INSERT INTO task_bunch (id, idempotency_key, base_name, step, size, definition, comment, "
                          f"created_by_id, created_at) VALUES (:i, :k, :b, :s, :n, :d, '', 1, {T})"),
                     {"i": bunch_id, "k": f"k{bunch_id}", "b": base, "s": step, "n": size, "d": definition})  # fmt: skip
        for i in range(1, size + 1):
            task_id = len(task_ids) + 1
            task_ids[bunch_id, i] = task_id
            conn.execute(text("INSERT INTO task (id, bunch_id, bunch_index, name, output_dataset, step, production, "
                              f"spec, params, parent_id, created_at) VALUES (:i, :b, :n, :name, :ds, :s, :p, '{{}}', '{{}}', "
                              f":parent, {T})"),
                         {"i": task_id, "b": bunch_id, "n": i, "name": f"{base}.{i}#{bunch_id}", "ds": f"D{task_id}",
                          "s": step, "p": base.split(".")[0], "parent": task_ids.get((parent, i))})  # fmt: skip
        conn.execute(text("INSERT INTO launch (task_id, idempotency_key, attempt, status, due_at, created_at, error) "
                          f"VALUES (:t, :k, 1, 'submitted', {T}, {T}, '')"), {"t": task_id, "k": f"l{task_id}"})  # fmt: skip


def _check(engine) -> None:
    migrate.upgrade(engine, "0010_path_catalog")
    with engine.begin() as conn:
        _seed(conn)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        chains = conn.execute(
            text("SELECT id, name, processing_type, definition, created_by_id FROM chain")
        ).all()
        steps = conn.execute(
            text("SELECT chain_id, position, step, bunch_id FROM chain_step ORDER BY position")
        ).all()
        flags = {r[0] for r in conn.execute(text("SELECT after_parent_done FROM launch"))}
    assert [(c.name, c.processing_type, c.created_by_id) for c in chains] == [
        ("PROD2025-001", "MC production", 1)
    ]
    assert [(s.position, s.step, s.bunch_id) for s in steps] == [(1, "SIM", 1), (2, "RECO", 2)]
    document = (
        chains[0].definition if isinstance(chains[0].definition, dict) else json.loads(chains[0].definition)
    )
    assert document["schema"] == "prodpanel.chain/1"
    assert [s["task_name"] for s in document["steps"]] == ["PROD2025-001.SIM", "PROD2025-001.RECO"]
    assert flags == {False}
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0010_path_catalog")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM task")).scalar_one() == 7  # the tasks stay


def test_on_both_databases(empty_engine):
    _check(empty_engine)
