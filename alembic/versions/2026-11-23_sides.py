"""sides: committees have a side of the exchange; members a workplace committee; rounds an owner

Every committee that takes part in the exchange has a `side`: `workplace` (the city agencies' party committee today)
or `residence` (the district committees today; the commune/ward committees after a re-organisation). `operator`
marks the committee that runs the exchange: its admins manage every committee's accounts, its auditors read the
whole log, and it applies registry editions. A member belongs to one workplace committee (`workplace_org`) and one
residence committee (`residence_org`); a feedback round belongs to the workplace committee that opened it.

Existing rows take the only values they can have had: `khoi` committees are the workplace side and operate the
exchange, districts are the residence side, and every member and round belongs to the workplace committee.

Revision ID: 0010_sides
Revises: 0009_security
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_sides"
down_revision: str | None = "0009_security"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORKPLACE = "(SELECT code FROM organizations WHERE side = 'workplace' ORDER BY code LIMIT 1)"


def upgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("side", sa.String(16), nullable=True))
        batch.add_column(sa.Column("operator", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_index("ix_organizations_side", ["side"])
    op.execute("UPDATE organizations SET side = 'workplace', operator = true WHERE kind = 'khoi'")
    op.execute("UPDATE organizations SET side = 'residence' WHERE kind = 'district'")

    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("workplace_org", sa.String(64), nullable=True))
    op.execute(f"UPDATE members SET workplace_org = {WORKPLACE}")  # noqa: S608 - a constant
    with op.batch_alter_table("members") as batch:
        batch.alter_column("workplace_org", existing_type=sa.String(64), nullable=False)
        batch.create_foreign_key(
            "fk_members_workplace_org_organizations", "organizations", ["workplace_org"], ["code"]
        )
        batch.create_index("ix_members_workplace_org", ["workplace_org"])

    with op.batch_alter_table("feedback_rounds") as batch:
        batch.add_column(sa.Column("org_code", sa.String(64), nullable=True))
    op.execute(f"UPDATE feedback_rounds SET org_code = {WORKPLACE}")  # noqa: S608 - a constant
    with op.batch_alter_table("feedback_rounds") as batch:
        batch.alter_column("org_code", existing_type=sa.String(64), nullable=False)
        batch.create_foreign_key(
            "fk_feedback_rounds_org_code_organizations", "organizations", ["org_code"], ["code"]
        )
        batch.drop_constraint("uq_feedback_rounds_year", type_="unique")
        batch.create_unique_constraint("uq_feedback_rounds_year", ["org_code", "year", "scope_key"])


def downgrade() -> None:
    # Before sides there was one workplace committee. With members or rounds of several, going back would hand them
    # all to one committee (widening who sees them) or break the one-round-per-year constraint: refuse, and change
    # nothing, before any table is altered.
    owners = op.get_bind().execute(
        sa.text("SELECT COUNT(DISTINCT workplace_org) FROM members UNION ALL SELECT COUNT(DISTINCT org_code) FROM feedback_rounds")
    )
    if any(count > 1 for (count,) in owners):
        raise RuntimeError(
            "0010_sides cannot be undone: members or feedback rounds belong to more than one workplace committee."
        )
    with op.batch_alter_table("feedback_rounds") as batch:
        batch.drop_constraint("uq_feedback_rounds_year", type_="unique")
        batch.create_unique_constraint("uq_feedback_rounds_year", ["year", "scope_key"])
        batch.drop_constraint("fk_feedback_rounds_org_code_organizations", type_="foreignkey")
        batch.drop_column("org_code")
    with op.batch_alter_table("members") as batch:
        batch.drop_index("ix_members_workplace_org")
        batch.drop_constraint("fk_members_workplace_org_organizations", type_="foreignkey")
        batch.drop_column("workplace_org")
    with op.batch_alter_table("organizations") as batch:
        batch.drop_index("ix_organizations_side")
        batch.drop_column("operator")
        batch.drop_column("side")
