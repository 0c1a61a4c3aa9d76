"""Accounts: system clients and staff users, each bound to one committee; signing keys; login throttling."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlmodel as sm
from pydantic import BaseModel, Field, field_validator
from sqlmodel import SQLModel

from app.models.base import JSONType, ts_field
from app.text import Code, Name


class AccountKind(StrEnum):
    client = "client"  # a district or Khối IT system (client_credentials)
    user = "user"  # a member of staff (password, Swagger UI)


class Role(StrEnum):
    clerk = "clerk"
    officer = "officer"
    auditor = "auditor"
    admin = "admin"


class Account(SQLModel, table=True):
    __tablename__ = "accounts"

    id: uuid.UUID = sm.Field(default_factory=uuid.uuid4, primary_key=True)
    kind: str = sm.Field(max_length=16)
    login: str = sm.Field(max_length=64, unique=True)
    org_code: str = sm.Field(foreign_key="organizations.code", max_length=64, index=True)
    secret_hash: str = sm.Field(max_length=255)
    roles: list[str] = sm.Field(default_factory=list, sa_type=JSONType)
    full_name: str | None = sm.Field(default=None, max_length=200)
    position: str | None = sm.Field(default=None, max_length=200)
    disabled_at: datetime | None = ts_field(nullable=True)
    # Tokens issued before this instant are refused (set on disable and on a password or secret rotation).
    tokens_valid_after: datetime | None = ts_field(nullable=True)
    created_by: uuid.UUID | None = None
    created_at: datetime = ts_field(default_now=True)
    updated_at: datetime = ts_field(default_now=True)


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


class SigningKey(SQLModel, table=True):
    __tablename__ = "signing_keys"

    kid: str = sm.Field(primary_key=True, max_length=64)
    algorithm: str = sm.Field(default="ES256", max_length=16)
    private_pem: str  # PKCS#8, encrypted with MX_KEY_PASSPHRASE
    public_jwk: dict[str, Any] = sm.Field(sa_type=JSONType)
    created_at: datetime = ts_field(default_now=True)
    retired_at: datetime | None = ts_field(nullable=True)


class LoginThrottle(SQLModel, table=True):
    __tablename__ = "login_throttle"

    key: str = sm.Field(primary_key=True, max_length=200)
    failures: int = 0
    window_started_at: datetime = ts_field(default_now=True)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str = ""
