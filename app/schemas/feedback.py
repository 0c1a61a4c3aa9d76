"""Schemas of feedbacks: what the API takes and returns (the tables are in app.models.feedback)."""

import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field

from app.text import Code


class FeedbackRoundCreate(BaseModel):
    model_config = {"extra": "forbid"}

    year: int = Field(ge=2000, le=2100)
    deadline: date
    units: list[Code] = Field(
        default_factory=list, max_length=200, description="grassroots unit codes; empty: every unit of the committee"
    )


class Counts(BaseModel):
    requested: int = 0
    answered: int = 0
    overdue: int = 0
    skipped: int = 0


class DistrictProgress(Counts):
    district: str
    successors: list[str] = Field(
        default_factory=list, description="a district retired by a registry edition: the committees that succeeded it"
    )


class UnitProgress(Counts):
    unit_code: str


class SkipReason(BaseModel):
    reason: str
    count: int


class FeedbackRoundPublic(BaseModel):
    id: uuid.UUID
    year: int
    deadline: date
    units: list[str]
    status: str = Field(description="running while requests are being created; then completed")
    processed: int
    totals: Counts
    by_district: list[DistrictProgress]
    by_unit: list[UnitProgress]
    skipped_reasons: list[SkipReason]
    created_at: datetime
    completed_at: datetime | None


class RemindersSent(BaseModel):
    sent: int
