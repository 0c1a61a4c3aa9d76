"""editions: a re-organisation of the committee registry applied as data

`registry_editions` records each applied edition (its id, the SHA-256 of its canonical content, when it takes
effect, who applied it and what it changed); `organization_successions` which committee succeeded which (directly,
or through a later edition); `member_reassignments` each member an edition moved from a retired committee to a
successor; `notice_transfers` each open notice that passed to a successor, with the transfer notice that carries
it. Nothing existing changes: the tables start empty.

Revision ID: 0011_editions
Revises: 0010_sides
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_editions"
down_revision: str | None = "0010_sides"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "registry_editions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("effective", sa.Date(), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("example", sa.Boolean(), nullable=False),
        sa.Column("content", JSON, nullable=False),
        sa.Column("summary", JSON, nullable=False),
        sa.Column("applied_at", TS, nullable=False),
        sa.Column("applied_by", sa.String(64), nullable=False),
        sa.Column("applied_by_account", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_registry_editions"),
    )
    op.create_table(
        "organization_successions",
        sa.Column("predecessor", sa.String(64), nullable=False),
        sa.Column("successor", sa.String(64), nullable=False),
        sa.Column("edition", sa.String(64), nullable=False),
        sa.Column("direct", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("predecessor", "successor", name="pk_organization_successions"),
        sa.ForeignKeyConstraint(
            ["predecessor"], ["organizations.code"], name="fk_organization_successions_predecessor_organizations"
        ),
        sa.ForeignKeyConstraint(
            ["successor"], ["organizations.code"], name="fk_organization_successions_successor_organizations"
        ),
        sa.ForeignKeyConstraint(
            ["edition"], ["registry_editions.id"], name="fk_organization_successions_edition_registry_editions"
        ),
    )
    op.create_index(
        "ix_organization_successions_successor", "organization_successions", ["successor", "predecessor"]
    )
    op.create_table(
        "member_reassignments",
        sa.Column("edition", sa.String(64), nullable=False),
        sa.Column("member_card_no", sa.String(12), nullable=False),
        sa.Column("side", sa.String(16), nullable=False),
        sa.Column("from_org", sa.String(64), nullable=False),
        sa.Column("to_org", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("edition", "member_card_no", "side", name="pk_member_reassignments"),
        sa.ForeignKeyConstraint(
            ["edition"], ["registry_editions.id"], name="fk_member_reassignments_edition_registry_editions"
        ),
        sa.ForeignKeyConstraint(
            ["member_card_no"], ["members.party_card_no"], name="fk_member_reassignments_member_card_no_members"
        ),
        sa.ForeignKeyConstraint(
            ["from_org"], ["organizations.code"], name="fk_member_reassignments_from_org_organizations"
        ),
        sa.ForeignKeyConstraint(["to_org"], ["organizations.code"], name="fk_member_reassignments_to_org_organizations"),
    )
    op.create_index("ix_member_reassignments_member", "member_reassignments", ["member_card_no"])
    op.create_table(
        "notice_transfers",
        sa.Column("transfer_id", sa.Uuid(), nullable=False),
        sa.Column("original_id", sa.Uuid(), nullable=False),
        sa.Column("edition", sa.String(64), nullable=False),
        sa.Column("from_org", sa.String(64), nullable=False),
        sa.Column("to_org", sa.String(64), nullable=False),
        sa.Column("original_sender", sa.String(64), nullable=False),
        sa.Column("original_kind", sa.String(40), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("transfer_id", name="pk_notice_transfers"),
        sa.ForeignKeyConstraint(["transfer_id"], ["notices.id"], name="fk_notice_transfers_transfer_id_notices"),
        sa.ForeignKeyConstraint(["original_id"], ["notices.id"], name="fk_notice_transfers_original_id_notices"),
        sa.ForeignKeyConstraint(
            ["edition"], ["registry_editions.id"], name="fk_notice_transfers_edition_registry_editions"
        ),
    )
    op.create_index("ix_notice_transfers_original_id", "notice_transfers", ["original_id"])


def downgrade() -> None:
    op.drop_table("notice_transfers")
    op.drop_table("member_reassignments")
    op.drop_table("organization_successions")
    op.drop_table("registry_editions")
