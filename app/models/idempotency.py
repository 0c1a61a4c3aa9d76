"""Idempotency keys (IETF httpapi draft), scoped to the calling account."""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.base import JSONType, ts_field


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_keys"

    account_id: uuid.UUID = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64, description="SHA-256 of method, path and body")
    state: str = Field(default="in_progress", max_length=16)
    response_status: int | None = None
    response_body: Any | None = Field(default=None, sa_type=JSONType)
    locked_until: datetime = ts_field()
    created_at: datetime = ts_field(default_now=True, index=True)

    __table_args__ = (sa.CheckConstraint("state IN ('in_progress', 'completed')", name="state"),)
