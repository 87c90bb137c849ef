"""chains → steps → bunches; launches that wait until the parent is done; existing SIM/RECO
bunches linked as chains

A bunch whose tasks all read the tasks of one other bunch (a RECO made with "RECO for this bunch")
becomes step 2 of a chain whose step 1 is that bunch, named after the production, processing type
"MC production". A second RECO bunch of the same SIM bunch stays a bunch of its own (a bunch is the
step of one chain at most).

Revision ID: 0008_chains
Revises: 0010_path_catalog
"""

import json

import sqlalchemy as sa
from alembic import op

import app.db

revision = "0008_chains"
down_revision = "0010_path_catalog"
branch_labels = None
depends_on = None

SCHEMA_ID = "prodpanel.chain/1"  # app/chains/schema.py
MIGRATED_PROCESSING_TYPE = "MC production"


def upgrade() -> None:
    op.create_table(
        "chain",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("processing_type", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("wait_for_parent_done", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("cloned_from_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cloned_from_id"], ["chain.id"], name=op.f("fk_chain_cloned_from_id_chain"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["user.id"], name=op.f("fk_chain_created_by_id_user"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_chain_idempotency_key")),
        sa.UniqueConstraint("name", name=op.f("uq_chain_name")),
    )
    op.create_table(
        "chain_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("bunch_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bunch_id"],
            ["task_bunch.id"],
            name=op.f("fk_chain_step_bunch_id_task_bunch"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["chain_id"], ["chain.id"], name=op.f("fk_chain_step_chain_id_chain"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_step")),
        sa.UniqueConstraint("bunch_id", name=op.f("uq_chain_step_bunch_id")),
        sa.UniqueConstraint("chain_id", "position", name="uq_chain_step_chain_id_position"),
    )
    with op.batch_alter_table("chain_step") as batch_op:
        batch_op.create_index(batch_op.f("ix_chain_step_chain_id"), ["chain_id"], unique=False)
    with op.batch_alter_table("launch") as batch_op:
        batch_op.add_column(
            sa.Column("after_parent_done", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("launch") as batch_op:
        batch_op.alter_column("after_parent_done", server_default=None)
    _link_existing_bunches()


def _document(name: str, first: dict, second: dict) -> dict:
    steps = [{k: v for k, v in definition.items() if k != "comment"} for definition in (first, second)]
    return {
        "schema": SCHEMA_ID,
        "name": name,
        "processing_type": MIGRATED_PROCESSING_TYPE,
        "wait_for_parent_done": False,
        "version_override_reason": "",
        "comment": "linked by migration 0008_chains",
        "steps": steps,
    }


def _link_existing_bunches() -> None:
    conn = op.get_bind()
    bunch = sa.table(
        "task_bunch",
        sa.column("id", sa.Integer),
        sa.column("base_name", sa.String),
        sa.column("step", sa.String),
        sa.column("definition", sa.JSON),
        sa.column("created_by_id", sa.Integer),
        sa.column("created_at", app.db.UTCDateTime()),
    )
    pairs = conn.execute(
        sa.text(
            "SELECT child.bunch_id, MIN(parent.bunch_id), COUNT(DISTINCT parent.bunch_id), MIN(parent.production) "
            "FROM task AS child JOIN task AS parent ON child.parent_id = parent.id "
            "WHERE child.bunch_id <> parent.bunch_id GROUP BY child.bunch_id ORDER BY child.bunch_id"
        )
    ).all()
    rows = {r.id: r for r in conn.execute(sa.select(bunch)).all()}
    chained: set[int] = set()
    names: set[str] = set()
    chain = sa.table(
        "chain",
        sa.column("id", sa.Integer),
        sa.column("idempotency_key", sa.String),
        sa.column("name", sa.String),
        sa.column("processing_type", sa.String),
        sa.column("definition", sa.JSON),
        sa.column("wait_for_parent_done", sa.Boolean),
        sa.column("comment", sa.Text),
        sa.column("created_by_id", sa.Integer),
        sa.column("created_at", app.db.UTCDateTime()),
    )
    chain_step = sa.table(
        "chain_step",
        sa.column("chain_id", sa.Integer),
        sa.column("position", sa.Integer),
        sa.column("step", sa.String),
        sa.column("bunch_id", sa.Integer),
    )
    for child_id, parent_id, n_parents, production in pairs:
        if n_parents != 1 or parent_id in chained or child_id in chained:
            continue
        first, second = rows[parent_id], rows[child_id]
        name = production if production not in names else f"{production} ({second.base_name})"
        names.add(name)
        chained.update((parent_id, child_id))
        first_def = first.definition if isinstance(first.definition, dict) else json.loads(first.definition)
        second_def = (
            second.definition if isinstance(second.definition, dict) else json.loads(second.definition)
        )
        chain_id = conn.execute(
            chain.insert()
            .values(
                idempotency_key=f"migrated-{parent_id}-{child_id}",
                name=name,
                processing_type=MIGRATED_PROCESSING_TYPE,
                definition=_document(name, first_def, second_def),
                wait_for_parent_done=False,
                comment="linked by migration 0008_chains",
                created_by_id=first.created_by_id,
                created_at=first.created_at,
            )
            .returning(chain.c.id)
        ).scalar_one()
        conn.execute(
            chain_step.insert(),
            [
                {"chain_id": chain_id, "position": 1, "step": first.step, "bunch_id": parent_id},
                {"chain_id": chain_id, "position": 2, "step": second.step, "bunch_id": child_id},
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table("launch") as batch_op:
        batch_op.drop_column("after_parent_done")
    with op.batch_alter_table("chain_step") as batch_op:
        batch_op.drop_index(batch_op.f("ix_chain_step_chain_id"))
    op.drop_table("chain_step")
    op.drop_table("chain")
