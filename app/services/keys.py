"""The service's signing keys: create the first one, rotate."""

from datetime import timedelta

from app.infra.db import Session
from app.infra.security import KeyStore, generate_signing_key
from app.models.account import SigningKey
from app.models.base import utcnow
from app.repositories import keys


async def ensure_signing_key(*, session: Session) -> bool:
    """Create a key when there is none; True if one was created."""
    if await keys.any_key(session):
        return False
    await keys.add(session, generate_signing_key())
    return True


async def rotate_keys(*, session: Session) -> SigningKey:
    """Add a new signing key; current keys stop issuing once every process has picked up the new one."""
    # Other processes refresh their keys within KeyStore.REFRESH_SECONDS; until then they still sign with
    # the old key, so its retirement starts only after that window.
    retire_at = utcnow() + timedelta(seconds=2 * KeyStore.REFRESH_SECONDS)
    await keys.retire_current(session, at=retire_at)
    new = generate_signing_key()
    await keys.add(session, new)
    return new
