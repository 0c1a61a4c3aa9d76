"""Idempotency keys (IETF httpapi draft), scoped to the calling account."""

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from app.models.base import JSONType, ts_field


class IdempotencyRecord(SQLModel, table=True):
    """The first response to a creating call, replayed for a retry with the same key and body."""

    __tablename__ = "idempotency_keys"

    account_id: uuid.UUID = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64, description="SHA-256 of method, path and body")
    response_status: int
    response_body: Any = Field(sa_type=JSONType)
    response_headers: dict[str, str] = Field(default_factory=dict, sa_type=JSONType)
    created_at: datetime = ts_field(default_now=True)
    expires_at: datetime = ts_field(index=True)
