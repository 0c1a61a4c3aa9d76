"""Idempotency records in the database (prepared: every creating call with a key runs them)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, bindparam, delete, func, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.idempotency import IdempotencyRecord
from app.repositories.prepared import Prepared, defer

_LOCK = Prepared(select(func.pg_try_advisory_xact_lock(bindparam("lock_id", type_=BigInteger)).label("locked")))
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


async def try_lock(session: AsyncSession, lock_id: int) -> bool:
    """A transaction-level advisory lock on the key (PostgreSQL); False when another transaction holds it."""
    row = await _LOCK.fetchrow(session, {"lock_id": lock_id})
    return bool(row["locked"])


async def find(session: AsyncSession, *, account_id: uuid.UUID, key: str) -> dict[str, Any] | None:
    """The stored response for this account's key: fingerprint, status, body, headers."""
    row = await _RECORD.fetchrow(session, {"account_id": account_id, "key": key})
    return dict(row) if row is not None else None


def record(session: AsyncSession, fields: dict[str, Any]) -> None:
    """Store the record with the request's last statement (nothing in the request reads it back)."""
    defer(session, _INSERT_RECORD, fields)


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
