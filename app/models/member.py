"""Members: the party members who work in city agencies, with the residence the exchange is about."""

from datetime import date, datetime
from enum import StrEnum

import sqlmodel as sm
from pydantic import BaseModel, Field, model_validator
from sqlmodel import SQLModel

from app.models.base import ts_field
from app.text import Code, Name, Text

CARD_NO_PATTERN = r"^[0-9]{6,12}$"
CITIZEN_ID_PATTERN = r"^[0-9]{12}$"


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


class MemberUpsert(BaseModel):
    """What the Khối sends to create or update a member (PUT is idempotent)."""

    model_config = {"extra": "forbid"}

    full_name: Name = Field(max_length=200)
    birth_date: date
    citizen_id: str | None = Field(default=None, pattern=CITIZEN_ID_PATTERN)
    workplace_unit_code: str = Field(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    workplace_unit_name: Name = Field(max_length=255)
    residence_org: Code = Field(description="code of the district of residence")
    residence_ward: Name = Field(max_length=120)
    residence_address: Name = Field(max_length=255)
    residence_since: date
    residence_status: ResidenceStatus = ResidenceStatus.introduced
    residence_cell: Name | None = Field(default=None, max_length=200)
    status_reason: Text | None = Field(default=None, max_length=2000)
    exemption_category: ExemptionCategory | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "MemberUpsert":
        if self.birth_date < date(1900, 1, 1) or self.birth_date > date.today():
            raise ValueError("birth_date: ngày sinh không hợp lệ")
        if self.residence_since < self.birth_date:
            raise ValueError("residence_since: ngày bắt đầu cư trú không được trước ngày sinh")
        if self.residence_status == ResidenceStatus.exempt and self.exemption_category is None:
            raise ValueError("exemption_category: cần nêu diện miễn sinh hoạt nơi cư trú")
        if self.residence_status != ResidenceStatus.exempt and self.exemption_category is not None:
            raise ValueError("exemption_category: chỉ dùng khi trạng thái là exempt")
        if self.residence_status == ResidenceStatus.accepted and not self.residence_cell:
            raise ValueError("residence_cell: cần nêu chi bộ nơi cư trú khi đã tiếp nhận")
        if self.residence_status == ResidenceStatus.not_accepted and not self.status_reason:
            raise ValueError("status_reason: cần nêu lý do không tiếp nhận")
        return self


class MemberPublic(BaseModel):
    party_card_no: str
    full_name: str
    birth_date: date
    citizen_id: str | None
    workplace_unit_code: str
    workplace_unit_name: str
    residence_org: str
    residence_ward: str
    residence_address: str
    residence_since: date
    residence_status: ResidenceStatus
    residence_cell: str | None
    status_reason: str | None
    exemption_category: ExemptionCategory | None
    version: int
    created_at: datetime
    updated_at: datetime


class MembersPublic(BaseModel):
    items: list[MemberPublic]
    next_cursor: str | None = None
