"""Members: the party members who work in city agencies, with the residence the exchange is about."""

from datetime import date, datetime
from enum import StrEnum

import sqlmodel as sm
from sqlmodel import SQLModel

from app.models.base import ts_field

CARD_NO_PATTERN = r"^[0-9]{6,12}$"


class ResidenceStatus(StrEnum):
    introduced = "introduced"
    accepted = "accepted"
    not_accepted = "not_accepted"
    exempt = "exempt"
    moved_away = "moved_away"


class ExemptionCategory(StrEnum):
    barracks = "barracks"  # sống trong doanh trại
    frequent_travel = "frequent_travel"  # thường xuyên đi công tác
    full_time_study = "full_time_study"  # học tập tập trung
    health = "health"  # sức khỏe yếu, tuổi cao
    other = "other"


class Member(SQLModel, table=True):
    __tablename__ = "members"

    party_card_no: str = sm.Field(primary_key=True, max_length=12)
    full_name: str = sm.Field(max_length=200)
    name_folded: str = sm.Field(max_length=200, index=True)
    birth_date: date
    citizen_id: str | None = sm.Field(default=None, max_length=12)
    workplace_org: str = sm.Field(foreign_key="organizations.code", max_length=64, index=True)
    workplace_unit_code: str = sm.Field(max_length=64, index=True)
    workplace_unit_name: str = sm.Field(max_length=255)
    residence_org: str = sm.Field(foreign_key="organizations.code", max_length=64, index=True)
    residence_ward: str = sm.Field(max_length=120)
    ward_folded: str = sm.Field(max_length=120)
    residence_address: str = sm.Field(max_length=255)
    residence_since: date
    residence_status: str = sm.Field(default=ResidenceStatus.introduced.value, max_length=16)
    residence_cell: str | None = sm.Field(default=None, max_length=200)
    status_reason: str | None = sm.Field(default=None, max_length=2000)
    exemption_category: str | None = sm.Field(default=None, max_length=32)
    version: int = 1
    created_at: datetime = ts_field(default_now=True)
    updated_at: datetime = ts_field(default_now=True)
