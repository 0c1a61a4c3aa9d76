"""feedback rounds: the annual residence-comment round and its items

Revision ID: 0006_feedback_rounds
Revises: 0005_webhooks
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_feedback_rounds"
down_revision: str | None = "0005_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "feedback_rounds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("scope", JSON, nullable=False),
        sa.Column("scope_key", sa.String(2000), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("requested", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("completed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_feedback_rounds"),
        sa.UniqueConstraint("year", "scope_key", name="uq_feedback_rounds_year"),
    )
    op.create_table(
        "feedback_round_items",
        sa.Column("round_id", sa.Uuid(), nullable=False),
        sa.Column("member_card_no", sa.String(12), nullable=False),
        sa.Column("district", sa.String(64), nullable=False),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("skip_reason", sa.String(64), nullable=True),
        sa.Column("notice_id", sa.Uuid(), nullable=True),
        sa.Column("reminded_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("round_id", "member_card_no", name="pk_feedback_round_items"),
        sa.ForeignKeyConstraint(["round_id"], ["feedback_rounds.id"],
                                name="fk_feedback_round_items_round_id_feedback_rounds"),
    )
    op.create_index("ix_feedback_round_items_district", "feedback_round_items", ["round_id", "district"])
    op.create_index("ix_feedback_round_items_notice_id", "feedback_round_items", ["notice_id"])


def downgrade() -> None:
    op.drop_table("feedback_round_items")
    op.drop_table("feedback_rounds")
