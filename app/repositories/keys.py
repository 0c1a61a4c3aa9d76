"""The service's signing keys in the database."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.account import SigningKey


async def any_key(session: AsyncSession) -> bool:
    """Whether any signing key exists."""
    return (await session.execute(select(SigningKey.kid).limit(1))).first() is not None


async def add(session: AsyncSession, key: SigningKey) -> None:
    session.add(key)
    await session.flush()


async def retire_current(session: AsyncSession, *, at: datetime) -> None:
    """Every key not yet retired stops issuing at `at`."""
    for key in (await session.execute(select(SigningKey).where(SigningKey.retired_at.is_(None)))).scalars():
        key.retired_at = at
