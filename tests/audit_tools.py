"""Tools for audit tests: read the log as an auditor, and tamper with it as a rogue database administrator."""

from sqlalchemy import text

from app.infra.db import db
from tests.conftest import IS_POSTGRES


async def entries(auditor, **params) -> list[dict]:
    """Every entry the auditor may see, oldest first."""
    items, cursor = [], None
    while True:
        r = await auditor.get(
            "/api/v1/audit/entries", params={"limit": 200, **params, **({"cursor": cursor} if cursor else {})}
        )
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return items


async def tamper(sql: str, **params) -> None:
    """Run SQL as an administrator who bypasses the append-only triggers."""
    async with db.sessions() as session:
        if IS_POSTGRES:
            await session.execute(text("SET LOCAL session_replication_role = replica"))
        await session.execute(text(sql), params)
        await session.commit()


async def rewrite_chain() -> None:
    """What a careful attacker does after editing an entry: recompute every hash so the chain is consistent."""
    from app.models.audit import AuditEntry
    from app.services.audit import GENESIS, entry_hash, link_hash

    async with db.sessions() as session:
        links = (await session.execute(text("SELECT position, entry_seq FROM audit_chain ORDER BY position"))).all()
        previous = GENESIS
        for position, seq in links:
            entry = await session.get(AuditEntry, seq)
            digest = entry_hash(entry)
            previous = link_hash(previous, digest)
            if IS_POSTGRES:
                await session.execute(text("SET LOCAL session_replication_role = replica"))
            await session.execute(
                text("UPDATE audit_chain SET entry_hash = :d, chain_hash = :c WHERE position = :p"),
                {"d": digest, "c": previous, "p": position},
            )
        await session.commit()
