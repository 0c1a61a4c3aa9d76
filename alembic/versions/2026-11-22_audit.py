"""audit: append-only entries, the sealed hash chain, signed checkpoints

Revision ID: 0003_audit
Revises: 0002_exchange
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_audit"
down_revision: str | None = "0002_exchange"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = ("audit_entries", "audit_chain", "audit_checkpoints")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "audit_entries",
        sa.Column("seq", BIGINT_PK, autoincrement=True, nullable=False),
        # The inserting transaction's id on PostgreSQL: the sealer chains entries only once every older
        # transaction has finished, so the chain's order never has to change.
        sa.Column("tx", sa.BigInteger(), nullable=False,
                  server_default=sa.text("txid_current()") if postgres else sa.text("0")),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("actor_account", sa.Uuid(), nullable=True),
        sa.Column("actor_login", sa.String(64), nullable=True),
        sa.Column("actor_org", sa.String(64), nullable=True),
        sa.Column("token_jti", sa.String(128), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=True),
        sa.Column("resource_id", sa.String(128), nullable=True),
        sa.Column("member_ref", sa.String(12), nullable=True),
        sa.Column("counterpart_org", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_entries"),
    )
    op.create_index("ix_audit_entries_tx_seq", "audit_entries", ["tx", "seq"])
    op.create_index("ix_audit_entries_actor_org_seq", "audit_entries", ["actor_org", "seq"])
    op.create_index("ix_audit_entries_counterpart_org_seq", "audit_entries", ["counterpart_org", "seq"])
    op.create_index("ix_audit_entries_member_ref", "audit_entries", ["member_ref"])

    op.create_table(
        "audit_chain",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("entry_seq", sa.BigInteger(), nullable=False),
        sa.Column("entry_tx", sa.BigInteger(), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("chain_hash", sa.String(64), nullable=False),
        sa.Column("sealed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_audit_chain"),
        sa.UniqueConstraint("entry_seq", name="uq_audit_chain_entry_seq"),
    )

    op.create_table(
        "audit_checkpoints",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("jws", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_checkpoints"),
    )

    if postgres:
        # Append-only at the database level. The service's own role must not own these tables (see README,
        # "PostgreSQL roles"), so it cannot disable the triggers.
        op.execute("""
            CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
                    USING ERRCODE = 'insufficient_privilege';
            END $$
        """)
        for table in APPEND_ONLY:
            op.execute(f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION audit_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}")
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_chain")
    op.drop_table("audit_entries")
