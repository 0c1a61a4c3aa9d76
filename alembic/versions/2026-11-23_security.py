"""security: tokens issued before a disable or a secret rotation stay dead; supplier key ids per committee

Revision ID: 0009_security
Revises: 0008_audit_spool
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_security"
down_revision: str | None = "0008_audit_spool"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("tokens_valid_after", TS, nullable=True))
    # A key id is the committee's own name for its key: another committee may use the same one.
    with op.batch_alter_table("supplier_keys") as batch:
        batch.drop_constraint("pk_supplier_keys", type_="primary")
        batch.create_primary_key("pk_supplier_keys", ["org_code", "kid"])


def downgrade() -> None:
    with op.batch_alter_table("supplier_keys") as batch:
        batch.drop_constraint("pk_supplier_keys", type_="primary")
        batch.create_primary_key("pk_supplier_keys", ["kid"])
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("tokens_valid_after")
