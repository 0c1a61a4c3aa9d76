"""The service's signing keys: create the first one, rotate."""

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.infra.security import KeyStore, generate_signing_key
from app.models.account import SigningKey
from app.models.base import utcnow


async def ensure_signing_key(*, session: AsyncSession) -> bool:
    """Create a key when there is none; True if one was created."""
    if (await session.execute(select(SigningKey.kid).limit(1))).first() is not None:
        return False
    session.add(generate_signing_key())
    await session.flush()
    return True


async def rotate_keys(*, session: AsyncSession) -> SigningKey:
    """Add a new signing key; current keys stop issuing once every process has picked up the new one."""
    # Other processes refresh their keys within KeyStore.REFRESH_SECONDS; until then they still sign with
    # the old key, so its retirement starts only after that window.
    retire_at = utcnow() + timedelta(seconds=2 * KeyStore.REFRESH_SECONDS)
    for key in (await session.execute(select(SigningKey).where(SigningKey.retired_at.is_(None)))).scalars():
        key.retired_at = retire_at
    new = generate_signing_key()
    session.add(new)
    await session.flush()
    return new
