"""Schemas of subscriptions: what the API takes and returns (the tables are in app.models.subscription)."""

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from app.models.notice import NoticeKind


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
