"""positions: notices and audit entries ordered without transaction ids

Notices get `position` (assigned after commit by the sequencer, app/services/sequencer.py); existing notices are
numbered in the order pulls handed them out until now, (tx, seq). Audit entries are ordered by the chain alone:
entries still unchained are chained now, in the same (tx, seq) order. The `tx` columns (txid_current()) go, and with
them every dependency on the server's transaction ids. Verification results get their own table.

Revision ID: 0007_positions
Revises: 0006_feedback_rounds
Create Date: 2026-11-23
"""

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace

import sqlalchemy as sa
from alembic import op

revision: str = "0007_positions"
down_revision: str | None = "0006_feedback_rounds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UNPOSITIONED = sa.text("position IS NULL")


def _chain_leftovers(bind) -> None:
    """Entries the old sealer had not chained yet, chained in its order, (tx, seq)."""
    from app.services.audit import GENESIS, entry_hash, link_hash

    head = bind.execute(sa.text("SELECT position, chain_hash FROM audit_chain ORDER BY position DESC LIMIT 1")).first()
    position, previous = (head.position + 1, head.chain_hash) if head else (0, GENESIS)
    rows = bind.execute(
        sa.text(
            "SELECT e.* FROM audit_entries e WHERE NOT EXISTS "
            "(SELECT 1 FROM audit_chain c WHERE c.entry_seq = e.seq) ORDER BY e.tx, e.seq"
        )
    ).mappings()
    now = datetime.now(UTC)
    links = []
    for row in rows:
        entry = SimpleNamespace(**row)
        if isinstance(entry.occurred_at, str):  # SQLite hands back text
            entry.occurred_at = datetime.fromisoformat(entry.occurred_at).replace(tzinfo=UTC)
        elif entry.occurred_at.tzinfo is None:
            entry.occurred_at = entry.occurred_at.replace(tzinfo=UTC)
        else:
            entry.occurred_at = entry.occurred_at.astimezone(UTC)
        if isinstance(entry.details, str):
            entry.details = json.loads(entry.details)
        if isinstance(entry.actor_account, str):
            entry.actor_account = uuid.UUID(entry.actor_account)
        digest = entry_hash(entry)
        previous = link_hash(previous, digest)
        links.append(
            {
                "position": position,
                "entry_seq": entry.seq,
                "entry_tx": entry.tx,
                "entry_hash": digest,
                "chain_hash": previous,
                "sealed_at": now,
            }
        )
        position += 1
    if links:
        table = sa.table(
            "audit_chain",
            *(sa.column(c) for c in ("position", "entry_seq", "entry_tx", "entry_hash", "chain_hash")),
            sa.column("sealed_at", TS),
        )
        bind.execute(table.insert(), links)


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    # Notices: positions in (tx, seq) order, the order of every cursor handed out so far.
    op.add_column("notices", sa.Column("position", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE notices SET position = numbered.n FROM "
        "(SELECT seq, row_number() OVER (ORDER BY tx, seq) AS n FROM notices) AS numbered "
        "WHERE notices.seq = numbered.seq"
    )
    op.drop_index("ix_notices_inbox", table_name="notices")
    op.drop_index("ix_notices_outbox", table_name="notices")
    op.create_index("ix_notices_inbox", "notices", ["recipient_org", "position"])
    op.create_index("ix_notices_outbox", "notices", ["sender_org", "position"])
    op.create_index("ux_notices_position", "notices", ["position"], unique=True)
    op.create_index(
        "ix_notices_unpositioned", "notices", ["seq"], postgresql_where=UNPOSITIONED, sqlite_where=UNPOSITIONED
    )
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("tx")

    # Audit: chain what the old sealer left, then the chain is the only order.
    _chain_leftovers(bind)
    op.drop_index("ix_audit_entries_tx_seq", table_name="audit_entries")
    op.create_index("ix_audit_entries_occurred_at", "audit_entries", ["occurred_at"])
    if postgres:  # dropping a column fires no row trigger; plain ALTER keeps the append-only triggers
        op.drop_column("audit_entries", "tx")
        op.drop_column("audit_chain", "entry_tx")
    else:
        with op.batch_alter_table("audit_entries") as batch:
            batch.drop_column("tx")
        with op.batch_alter_table("audit_chain") as batch:
            batch.drop_column("entry_tx")

    op.create_table(
        "audit_verifications",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("verified_at", TS, nullable=False),
        sa.Column("verified_by", sa.String(64), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=True),
        sa.Column("resumed_from", sa.BigInteger(), nullable=True),
        sa.Column("unsealed", sa.BigInteger(), nullable=False),
        sa.Column("checkpoints_checked", sa.Integer(), nullable=False),
        sa.Column("first_problem", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_verifications"),
    )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.drop_table("audit_verifications")
    # Existing rows get tx 0 and sort by seq among themselves; new rows get the transaction id again (above 0).
    # The chain order stays as sealed; entries not yet chained are chained by the old sealer after them.
    tx_default = sa.text("txid_current()") if postgres else sa.text("0")
    for table, column in (("audit_entries", "tx"), ("audit_chain", "entry_tx")):
        if postgres:
            op.add_column(table, sa.Column(column, sa.BigInteger(), nullable=False, server_default=sa.text("0")))
        else:
            with op.batch_alter_table(table) as batch:
                batch.add_column(sa.Column(column, sa.BigInteger(), nullable=False, server_default=sa.text("0")))
    if postgres:
        op.alter_column("audit_entries", "tx", server_default=tx_default)
        op.alter_column("audit_chain", "entry_tx", server_default=None)
    op.drop_index("ix_audit_entries_occurred_at", table_name="audit_entries")
    op.create_index("ix_audit_entries_tx_seq", "audit_entries", ["tx", "seq"])

    # Notices: tx numbered like the positions (then seq keeps that order for rows with equal tx = position).
    op.drop_index("ix_notices_unpositioned", table_name="notices")
    op.drop_index("ux_notices_position", table_name="notices")
    op.drop_index("ix_notices_inbox", table_name="notices")
    op.drop_index("ix_notices_outbox", table_name="notices")
    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("tx", sa.BigInteger(), nullable=False, server_default=sa.text("0")))
    op.execute("UPDATE notices SET tx = 0")
    if postgres:
        op.alter_column("notices", "tx", server_default=tx_default)
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("position")
    op.create_index("ix_notices_inbox", "notices", ["recipient_org", "tx", "seq"])
    op.create_index("ix_notices_outbox", "notices", ["sender_org", "tx", "seq"])
