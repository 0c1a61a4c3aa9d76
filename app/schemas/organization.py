"""Schemas of organizations: what the API takes and returns (the tables are in app.models.organization)."""

from pydantic import Field
from sqlmodel import SQLModel

from app.models.organization import OrganizationBase


class OrganizationPublic(OrganizationBase):
    active: bool
    successors: list[str] = Field(
        default_factory=list, description="retired by a registry edition: the committees that took over its members"
    )


class OrganizationsPublic(SQLModel):
    items: list[OrganizationPublic]
    next_cursor: str | None = None
