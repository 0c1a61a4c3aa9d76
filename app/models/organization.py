"""The committee registry: data, not code, so committees can be retired and mapped to successors."""

from datetime import date, datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from app.models.base import ts_field


class OrgKind(StrEnum):
    khoi = "khoi"
    district = "district"
    grassroots = "grassroots"
    ward = "ward"


class OrgSide(StrEnum):
    """The two sides of the exchange. A committee with no side (a grassroots or ward committee kept for reference)
    takes no part in it."""

    workplace = "workplace"  # the city agencies' side: keeps the member records, introduces, asks for comments
    residence = "residence"  # where members live: accepts, comments


class OrganizationBase(SQLModel):
    code: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16, index=True)
    side: str | None = Field(default=None, max_length=16, index=True)
    operator: bool = Field(
        default=False,
        description="runs the exchange: manages every committee's accounts, audits the whole log, applies editions",
    )
    name: str = Field(max_length=255)
    short_name: str | None = Field(default=None, max_length=120)
    unit: str | None = Field(default=None, max_length=32)
    area: str | None = Field(default=None, max_length=255)
    parent_code: str | None = Field(default=None, foreign_key="organizations.code", max_length=64)
    valid_from: date = Field(default=date(2014, 1, 1))
    valid_to: date | None = None
    successor_code: str | None = Field(default=None, foreign_key="organizations.code", max_length=64)


class Organization(OrganizationBase, table=True):
    __tablename__ = "organizations"

    created_at: datetime = ts_field(default_now=True)
    updated_at: datetime = ts_field(default_now=True)

    def is_active(self, on: date) -> bool:
        return self.valid_from <= on and (self.valid_to is None or on < self.valid_to)
