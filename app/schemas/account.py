"""Schemas of accounts: what the API takes and returns (the tables are in app.models.account)."""

import uuid
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from app.models.account import Account, AccountKind, Role
from app.text import Code, Name


class AccountCreate(BaseModel):
    model_config = {"extra": "forbid"}

    kind: AccountKind
    org_code: Code
    username: str | None = Field(
        default=None,
        min_length=3,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9._-]{2,63}$",
        description="staff users only; system clients get a generated client_id",
    )
    roles: list[Role] = Field(min_length=1, max_length=4)
    full_name: Name | None = Field(default=None, max_length=200)
    position: Name | None = Field(default=None, max_length=200)

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, v: list[Role]) -> list[Role]:
        return sorted(set(v))


class AccountPublic(BaseModel):
    id: uuid.UUID
    kind: AccountKind
    login: str
    org_code: str
    roles: list[str]
    full_name: str | None
    position: str | None
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, a: Account) -> "AccountPublic":
        return cls(
            id=a.id,
            kind=a.kind,
            login=a.login,
            org_code=a.org_code,
            roles=a.roles,
            full_name=a.full_name,
            position=a.position,
            disabled=a.disabled_at is not None,
            created_at=a.created_at,
        )


class AccountCreated(AccountPublic):
    secret: str = Field(description="client secret or password; shown only this once")


class AccountsPublic(BaseModel):
    items: list[AccountPublic]
    next_cursor: str | None = None


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str = ""
