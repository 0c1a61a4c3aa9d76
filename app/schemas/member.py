"""Schemas of members: what the API takes and returns (the tables are in app.models.member)."""

from datetime import date, datetime

from pydantic import BaseModel, Field, model_validator

from app.infra.clock import today
from app.models.member import ExemptionCategory, ResidenceStatus
from app.text import Code, Name, Text

CITIZEN_ID_PATTERN = r"^[0-9]{12}$"


class MemberUpsert(BaseModel):
    """What a workplace-side committee sends to create or update one of its members (PUT is idempotent)."""

    model_config = {"extra": "forbid"}

    full_name: Name = Field(max_length=200)
    birth_date: date
    citizen_id: str | None = Field(default=None, pattern=CITIZEN_ID_PATTERN)
    workplace_unit_code: str = Field(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    workplace_unit_name: Name = Field(max_length=255)
    residence_org: Code = Field(description="code of the residence committee (a residence-side committee)")
    residence_ward: Name = Field(max_length=120)
    residence_address: Name = Field(max_length=255)
    residence_since: date
    residence_status: ResidenceStatus = ResidenceStatus.introduced
    residence_cell: Name | None = Field(default=None, max_length=200)
    status_reason: Text | None = Field(default=None, max_length=2000)
    exemption_category: ExemptionCategory | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "MemberUpsert":
        if self.birth_date < date(1900, 1, 1) or self.birth_date > today():
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
    workplace_org: str = Field(description="the workplace committee whose member this is")
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
