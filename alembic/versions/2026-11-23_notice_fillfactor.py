"""notice fillfactor: room on each page of `notices` for its rows' later versions (PostgreSQL)

A notice is written once and then updated two or three times (delivered, acknowledged, answered). None of those
columns is indexed, so PostgreSQL can keep each new version on the same page without touching the table's nine
indexes (a "heap-only tuple" update) — but only if the page has room. At the default fillfactor (100) pages are
filled up on insert, and every status change wrote nine index entries. 85 leaves room for about two more versions
of a typical row; pages written before this keep their layout until they are rewritten (VACUUM FULL, a restore).
SQLite: nothing to do.

Revision ID: 0013_notice_fillfactor
Revises: 0012_account_cache
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_notice_fillfactor"
down_revision: str | None = "0012_account_cache"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE notices SET (fillfactor = 85)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE notices RESET (fillfactor)")
