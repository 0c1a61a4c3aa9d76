"""The login throttle in the database: failure counters per key and window, and the addresses a login usually
comes from (app/services/auth.py decides what is counted and what the limits are)."""

from datetime import datetime, timedelta

from sqlalchemy import case, delete, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.account import LoginThrottle
from app.models.base import UTCDateTime


def _upsert(session: AsyncSession):
    return postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert


async def window_started(session: AsyncSession, key: str) -> datetime | None:
    """When the current window of `key` started, or None when there is no such counter."""
    row = await session.get(LoginThrottle, key)
    return row.window_started_at if row is not None else None


async def count(session: AsyncSession, key: str, now: datetime, *, window: timedelta) -> tuple[int, datetime]:
    """Count one more against `key` in its current window (a window older than `window` starts again at `now`),
    atomically (one statement); the new count and the window's start."""
    expired = LoginThrottle.window_started_at < now - window
    stmt = (
        _upsert(session)(LoginThrottle)
        .values(key=key, failures=1, window_started_at=now)
        .on_conflict_do_update(
            index_elements=[LoginThrottle.key],
            set_={
                "failures": case((expired, 1), else_=LoginThrottle.failures + 1),
                "window_started_at": case((expired, literal(now, UTCDateTime)), else_=LoginThrottle.window_started_at),
            },
        )
        .returning(LoginThrottle.failures, LoginThrottle.window_started_at)
    )
    row = (await session.execute(stmt)).one()
    return row[0], row[1]


async def give_back(session: AsyncSession, keys: list[str]) -> None:
    """Take one count back from each of `keys` (never below zero)."""
    for key in keys:
        await session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key == key, LoginThrottle.failures > 0)
            .values(failures=LoginThrottle.failures - 1)
        )


async def touch(session: AsyncSession, key: str, now: datetime) -> None:
    """Start `key`'s window at `now` (created with no failures when missing)."""
    await session.execute(
        _upsert(session)(LoginThrottle)
        .values(key=key, failures=0, window_started_at=now)
        .on_conflict_do_update(
            index_elements=[LoginThrottle.key], set_={"window_started_at": literal(now, UTCDateTime)}
        )
    )


async def purge_ended(session: AsyncSession, *, window_ended: datetime, batch: int) -> int:
    """Delete up to `batch` counters whose window started before `window_ended`; how many."""
    stale = select(LoginThrottle.key).where(LoginThrottle.window_started_at < window_ended).limit(batch)
    result = await session.execute(
        delete(LoginThrottle).where(LoginThrottle.key.in_(stale), LoginThrottle.window_started_at < window_ended)
    )
    return result.rowcount
