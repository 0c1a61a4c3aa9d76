"""The annual residence-comment round: one comment request per eligible member, with progress."""

import uuid
from datetime import date, datetime

import sqlalchemy as sa
import sqlmodel as sm
from sqlmodel import SQLModel

from app.models.base import JSONType, ts_field


class FeedbackRound(SQLModel, table=True):
    __tablename__ = "feedback_rounds"
    __table_args__ = (sa.UniqueConstraint("org_code", "year", "scope_key", name="uq_feedback_rounds_year"),)

    id: uuid.UUID = sm.Field(default_factory=uuid.uuid4, primary_key=True)
    org_code: str = sm.Field(foreign_key="organizations.code", max_length=64, description="the workplace committee")
    year: int
    deadline: date
    scope: list[str] = sm.Field(default_factory=list, sa_type=JSONType)
    scope_key: str = sm.Field(max_length=2000, description="'*' or the sorted unit codes")
    status: str = sm.Field(default="running", max_length=16)
    processed: int = 0
    requested: int = 0
    skipped: int = 0
    error: str | None = sm.Field(default=None, max_length=500)
    created_by: uuid.UUID
    created_at: datetime = ts_field(default_now=True)
    updated_at: datetime = ts_field(default_now=True)
    completed_at: datetime | None = ts_field(nullable=True)


class FeedbackRoundItem(SQLModel, table=True):
    """One member in a round: requested (with its notice) or skipped (with the reason)."""

    __tablename__ = "feedback_round_items"
    __table_args__ = (
        sa.Index("ix_feedback_round_items_district", "round_id", "district"),
        sa.Index("ix_feedback_round_items_notice_id", "notice_id"),
    )

    round_id: uuid.UUID = sm.Field(foreign_key="feedback_rounds.id", primary_key=True)
    member_card_no: str = sm.Field(max_length=12, primary_key=True)
    district: str = sm.Field(max_length=64)
    unit_code: str = sm.Field(max_length=64)
    status: str = sm.Field(max_length=16)
    skip_reason: str | None = sm.Field(default=None, max_length=64)
    notice_id: uuid.UUID | None = None
    reminded_at: datetime | None = ts_field(nullable=True)


# ---- API schemas ------------------------------------------------------------------------------------------
