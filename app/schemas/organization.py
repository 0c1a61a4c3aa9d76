"""Schemas of organizations: what the API takes and returns (the tables are in app.models.organization)."""

from sqlmodel import SQLModel

from app.models.organization import OrganizationBase


class OrganizationPublic(OrganizationBase):
    active: bool


class OrganizationsPublic(SQLModel):
    items: list[OrganizationPublic]
    next_cursor: str | None = None
