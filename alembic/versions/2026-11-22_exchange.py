"""exchange: members, notices, idempotency keys

Revision ID: 0002_exchange
Revises: 0001_foundation
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_exchange"
down_revision: str | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "members",
        sa.Column("party_card_no", sa.String(12), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("name_folded", sa.String(200), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("citizen_id", sa.String(12), nullable=True),
        sa.Column("workplace_unit_code", sa.String(64), nullable=False),
        sa.Column("workplace_unit_name", sa.String(255), nullable=False),
        sa.Column("residence_org", sa.String(64), nullable=False),
        sa.Column("residence_ward", sa.String(120), nullable=False),
        sa.Column("ward_folded", sa.String(120), nullable=False),
        sa.Column("residence_address", sa.String(255), nullable=False),
        sa.Column("residence_since", sa.Date(), nullable=False),
        sa.Column("residence_status", sa.String(16), nullable=False),
        sa.Column("residence_cell", sa.String(200), nullable=True),
        sa.Column("status_reason", sa.String(2000), nullable=True),
        sa.Column("exemption_category", sa.String(32), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("party_card_no", name="pk_members"),
        sa.ForeignKeyConstraint(["residence_org"], ["organizations.code"],
                                name="fk_members_residence_org_organizations"),
    )
    op.create_index("ix_members_name_folded", "members", ["name_folded"])
    op.create_index("ix_members_workplace_unit_code", "members", ["workplace_unit_code"])
    op.create_index("ix_members_residence_org", "members", ["residence_org"])

    op.create_table(
        "notices",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        # The inserting transaction's id on PostgreSQL: pulls order and cut by it (see services/notices.py).
        sa.Column("tx", sa.BigInteger(), nullable=False,
                  server_default=sa.text("txid_current()") if postgres else sa.text("0")),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("sender_org", sa.String(64), nullable=False),
        sa.Column("recipient_org", sa.String(64), nullable=False),
        sa.Column("member_card_no", sa.String(12), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("in_reply_to", sa.Uuid(), nullable=True),
        sa.Column("supersedes", sa.Uuid(), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("acknowledged_by", sa.Uuid(), nullable=True),
        sa.Column("answered_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_notices"),
        sa.UniqueConstraint("id", name="uq_notices_id"),
        sa.ForeignKeyConstraint(["sender_org"], ["organizations.code"], name="fk_notices_sender_org_organizations"),
        sa.ForeignKeyConstraint(["recipient_org"], ["organizations.code"],
                                name="fk_notices_recipient_org_organizations"),
        sa.ForeignKeyConstraint(["member_card_no"], ["members.party_card_no"],
                                name="fk_notices_member_card_no_members"),
    )
    op.create_index("ix_notices_inbox", "notices", ["recipient_org", "tx", "seq"])
    op.create_index("ix_notices_outbox", "notices", ["sender_org", "tx", "seq"])
    op.create_index("ix_notices_kind", "notices", ["kind"])
    op.create_index("ix_notices_member_card_no", "notices", ["member_card_no"])
    op.create_index("ix_notices_thread_id", "notices", ["thread_id"])

    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=False),
        sa.Column("response_body", JSON, nullable=False),
        sa.Column("response_headers", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("notices")
    op.drop_table("members")
