"""The schema is made only by migrations: they must match the models exactly."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import app.models  # noqa: F401
from app.infra.db import db


async def test_migrations_match_the_models():
    def diff(conn):
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)

    async with db.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


def test_sides_are_not_undone_once_members_belong_to_two_workplace_committees(tmp_path):
    """Going back before 0010_sides would hand every member to one workplace committee: refused, nothing changed."""
    import sqlite3

    from alembic import command
    from app.cli import alembic_config

    path = tmp_path / "sides.db"
    cfg = alembic_config(f"sqlite+aiosqlite:///{path}")
    command.upgrade(cfg, "0010_sides")
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            INSERT INTO organizations (code, kind, side, operator, name, valid_from, created_at, updated_at)
            VALUES ('a', 'khoi', 'workplace', 1, 'A', '2014-01-01', '2026-01-01', '2026-01-01'),
                   ('b', 'khoi', 'workplace', 0, 'B', '2014-01-01', '2026-01-01', '2026-01-01'),
                   ('d', 'district', 'residence', 0, 'D', '2014-01-01', '2026-01-01', '2026-01-01');
            INSERT INTO members (party_card_no, full_name, name_folded, birth_date, workplace_org, workplace_unit_code,
                workplace_unit_name, residence_org, residence_ward, ward_folded, residence_address, residence_since,
                residence_status, version, created_at, updated_at)
            VALUES ('100001', 'X', 'x', '1980-01-01', 'a', 'u', 'U', 'd', 'W', 'w', 'S', '2020-01-01', 'accepted', 1,
                    '2026-01-01', '2026-01-01'),
                   ('100002', 'Y', 'y', '1980-01-01', 'b', 'u', 'U', 'd', 'W', 'w', 'S', '2020-01-01', 'accepted', 1,
                    '2026-01-01', '2026-01-01');
            """
        )
    with pytest.raises(RuntimeError, match="cannot be undone"):
        command.downgrade(cfg, "0009_security")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0010_sides",)]
        assert conn.execute("SELECT workplace_org FROM members ORDER BY 1").fetchall() == [("a",), ("b",)]
        conn.execute("DELETE FROM members WHERE workplace_org = 'b'")
    command.downgrade(cfg, "0009_security")
    with sqlite3.connect(path) as conn:
        assert "workplace_org" not in {row[1] for row in conn.execute("PRAGMA table_info(members)")}


async def test_notices_leave_room_on_each_page_for_their_status_changes():
    """On PostgreSQL a notice's status changes (delivered, acknowledged, answered) touch no indexed column: with
    room left on the page they are heap-only updates, writing none of the table's index entries."""
    async with db.engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            pytest.skip("a PostgreSQL storage parameter")
        options = (await conn.exec_driver_sql("SELECT reloptions FROM pg_class WHERE relname = 'notices'")).scalar()
    assert "fillfactor=85" in (options or [])
