"""Idempotency records in the database (prepared: every creating call with a key runs them).

The record's primary key (account, key) is what makes a key used once: a second request with the same key that
got past the lookup (the first had not committed yet) fails on it when it writes, with everything it wrote."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.idempotency import IdempotencyRecord
from app.repositories.prepared import Prepared, later

_PRIMARY_KEY = "pk_idempotency_keys"
_RECORD = Prepared(
    select(
        IdempotencyRecord.fingerprint,
        IdempotencyRecord.response_status,
        IdempotencyRecord.response_body,
        IdempotencyRecord.response_headers,
    ).where(IdempotencyRecord.account_id == bindparam("account_id"), IdempotencyRecord.key == bindparam("key"))
)
_INSERT_RECORD = Prepared(
    insert(IdempotencyRecord.__table__), column_keys=[c.name for c in IdempotencyRecord.__table__.columns]
)


async def find(session: AsyncSession, *, account_id: uuid.UUID, key: str) -> dict[str, Any] | None:
    """The stored response for this account's key: fingerprint, status, body, headers."""
    row = await _RECORD.fetchrow(session, {"account_id": account_id, "key": key})
    return dict(row) if row is not None else None


def key_taken(exc: BaseException) -> bool:
    """Whether writing a record failed because another request stored the same account's key first."""
    if not isinstance(exc, IntegrityError):
        return False
    cause = getattr(exc, "orig", None)
    name = getattr(cause, "constraint_name", None) or str(cause)  # SQLite names the columns
    return _PRIMARY_KEY in name or "idempotency_keys.key" in name


async def record(session: AsyncSession, fields: dict[str, Any]) -> None:
    """Store the record with the request's last statement (nothing in the request reads it back)."""
    await later(session, _INSERT_RECORD, fields)


async def purge_expired(session: AsyncSession, *, now: datetime, batch: int) -> int:
    """Delete up to `batch` records past their `expires_at`; how many."""
    expired_keys = (
        select(IdempotencyRecord.account_id, IdempotencyRecord.key)
        .where(IdempotencyRecord.expires_at < now)
        .limit(batch)
    )
    result = await session.execute(
        delete(IdempotencyRecord).where(
            tuple_(IdempotencyRecord.account_id, IdempotencyRecord.key).in_(expired_keys),
            IdempotencyRecord.expires_at < now,
        )
    )
    return result.rowcount
