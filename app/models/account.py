"""Accounts: system clients and staff users, each bound to one committee; signing keys; login throttling."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlmodel as sm
from sqlmodel import SQLModel

from app.models.base import JSONType, ts_field


class AccountKind(StrEnum):
    client = "client"  # a committee's IT system (client_credentials)
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
