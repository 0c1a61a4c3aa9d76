"""audit spool: which locally spooled audit entries have been written into the log (each exactly once)

Revision ID: 0008_audit_spool
Revises: 0007_positions
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_audit_spool"
down_revision: str | None = "0007_positions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_spool_replays",
        sa.Column("spool_id", sa.String(32), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("spool_id", name="pk_audit_spool_replays"),
    )


def downgrade() -> None:
    op.drop_table("audit_spool_replays")
