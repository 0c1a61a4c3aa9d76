"""foundation: committee registry, accounts, signing keys, login throttling

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_foundation"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("short_name", sa.String(120), nullable=True),
        sa.Column("unit", sa.String(32), nullable=True),
        sa.Column("area", sa.String(255), nullable=True),
        sa.Column("parent_code", sa.String(64), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("successor_code", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_organizations"),
        sa.ForeignKeyConstraint(["parent_code"], ["organizations.code"],
                                name="fk_organizations_parent_code_organizations"),
        sa.ForeignKeyConstraint(["successor_code"], ["organizations.code"],
                                name="fk_organizations_successor_code_organizations"),
    )
    op.create_index("ix_organizations_kind", "organizations", ["kind"])

    op.create_table(
        "accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("login", sa.String(64), nullable=False),
        sa.Column("org_code", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("roles", JSON, nullable=False),
        sa.Column("full_name", sa.String(200), nullable=True),
        sa.Column("position", sa.String(200), nullable=True),
        sa.Column("disabled_at", TS, nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("login", name="uq_accounts_login"),
        sa.ForeignKeyConstraint(["org_code"], ["organizations.code"], name="fk_accounts_org_code_organizations"),
    )
    op.create_index("ix_accounts_org_code", "accounts", ["org_code"])

    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("private_pem", sa.String(), nullable=False),
        sa.Column("public_jwk", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("retired_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_keys"),
    )

    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_login_throttle"),
    )


def downgrade() -> None:
    op.drop_table("login_throttle")
    op.drop_table("signing_keys")
    op.drop_index("ix_accounts_org_code", table_name="accounts")
    op.drop_table("accounts")
    op.drop_index("ix_organizations_kind", table_name="organizations")
    op.drop_table("organizations")
