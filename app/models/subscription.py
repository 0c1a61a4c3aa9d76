"""Push delivery: each committee's webhook subscriptions, the durable outbox, and every attempt."""

import uuid
from datetime import datetime

import sqlalchemy as sa
import sqlmodel as sm
from sqlmodel import SQLModel

from app.models.base import JSONType, ts_field


class Subscription(SQLModel, table=True):
    __tablename__ = "subscriptions"

    id: uuid.UUID = sm.Field(default_factory=uuid.uuid4, primary_key=True)
    org_code: str = sm.Field(foreign_key="organizations.code", max_length=64, index=True)
    url: str = sm.Field(max_length=2000)
    kinds: list[str] = sm.Field(default_factory=list, sa_type=JSONType)
    secret: str = sm.Field(description="encrypted with the service's key passphrase")
    previous_secret: str | None = None
    previous_secret_until: datetime | None = ts_field(nullable=True)
    active: bool = True
    disabled_reason: str | None = sm.Field(default=None, max_length=200)
    created_by: uuid.UUID
    created_at: datetime = ts_field(default_now=True)
    deleted_at: datetime | None = ts_field(nullable=True)


class Delivery(SQLModel, table=True):
    """One event for one subscription: written with the notice, sent by the worker, retried until done."""

    __tablename__ = "deliveries"
    __table_args__ = (sa.Index("ix_deliveries_due", "status", "next_attempt_at"),)

    id: uuid.UUID = sm.Field(default_factory=uuid.uuid4, primary_key=True)
    subscription_id: uuid.UUID = sm.Field(foreign_key="subscriptions.id", index=True)
    notice_id: uuid.UUID = sm.Field(foreign_key="notices.id")
    event_type: str = sm.Field(max_length=64)
    payload: str = sm.Field(description="the exact JSON body that is signed and sent")
    status: str = sm.Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = ts_field(default_now=True)
    created_at: datetime = ts_field(default_now=True)
    delivered_at: datetime | None = ts_field(nullable=True)


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempts"

    id: int | None = sm.Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    )
    delivery_id: uuid.UUID = sm.Field(foreign_key="deliveries.id", index=True)
    attempt: int
    at: datetime = ts_field(default_now=True)
    status_code: int | None = None
    error: str | None = sm.Field(default=None, max_length=500)
    duration_ms: int = 0


# ---- API schemas ------------------------------------------------------------------------------------------
