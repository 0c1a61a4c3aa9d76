"""Advisory locks: one run at a time across the processes that share a database (PostgreSQL; SQLite serialises its
writers anyway, so every caller may run there)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.infra.db import db


@asynccontextmanager
async def held_while_running(lock_id: int) -> AsyncIterator[bool]:
    """True when this process holds `lock_id` for the block (a session-level lock on a connection of its own, so it
    spans the block's transactions); False when another process holds it. Always True on SQLite."""
    if db.engine.dialect.name != "postgresql":
        yield True
        return
    async with db.engine.connect() as conn:
        got = bool(await conn.scalar(select(func.pg_try_advisory_lock(lock_id))))
        await conn.commit()
        try:
            yield got
        finally:
            if got:
                await conn.scalar(select(func.pg_advisory_unlock(lock_id)))
                await conn.commit()


async def for_transaction(session: AsyncSession, lock_id: int, *, wait: bool) -> bool:
    """Take `lock_id` until the session's transaction ends; `wait`: until it is free, else False when another
    transaction holds it. Always True on SQLite."""
    if session.bind.dialect.name != "postgresql":
        return True
    if wait:
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})
        return True
    return bool(await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock_id}))
