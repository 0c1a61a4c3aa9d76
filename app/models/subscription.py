"""Push delivery: each committee's webhook subscriptions, the durable outbox, and every attempt."""

import uuid
from datetime import datetime

import sqlalchemy as sa
import sqlmodel as sm
from pydantic import BaseModel, Field
from sqlmodel import SQLModel

from app.models.base import JSONType, ts_field
from app.models.notice import NoticeKind


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


class SubscriptionCreate(BaseModel):
    model_config = {"extra": "forbid"}

    url: str = Field(max_length=2000, description="HTTPS endpoint of the committee's system")
    kinds: list[NoticeKind] = Field(default_factory=list, max_length=20, description="empty: every kind")


class SubscriptionPublic(BaseModel):
    id: uuid.UUID
    org_code: str
    url: str
    kinds: list[str]
    active: bool
    disabled_reason: str | None
    created_at: datetime


class SubscriptionCreated(SubscriptionPublic):
    secret: str = Field(description="the signing secret (whsec_…); shown only this once")


class SubscriptionsPublic(BaseModel):
    items: list[SubscriptionPublic]


class AttemptPublic(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryPublic(BaseModel):
    id: uuid.UUID
    notice_id: uuid.UUID
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    history: list[AttemptPublic]


class DeliveriesPublic(BaseModel):
    items: list[DeliveryPublic]
    next_cursor: str | None = None
