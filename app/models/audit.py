"""The audit log: one entry per request, hash-chained by a background sealer, with signed checkpoints."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
import sqlmodel as sm
from sqlmodel import SQLModel

from app.models.base import JSONType, ts_field

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Outcome(StrEnum):
    allowed = "allowed"
    denied = "denied"
    failed = "failed"


class AuditEntry(SQLModel, table=True):
    """Appended in the transaction of the request it records; never updated (PostgreSQL triggers refuse it)."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        sa.Index("ix_audit_entries_occurred_at", "occurred_at"),
        sa.Index("ix_audit_entries_actor_org_seq", "actor_org", "seq"),
        sa.Index("ix_audit_entries_counterpart_org_seq", "counterpart_org", "seq"),
        sa.Index("ix_audit_entries_member_ref", "member_ref"),
    )

    # An identifier assigned at insert, not the order: the chain (AuditChainLink.position) is the order.
    seq: int | None = sm.Field(default=None, sa_column=sa.Column(BIGINT_PK, primary_key=True, autoincrement=True))
    occurred_at: datetime = ts_field(default_now=True)
    request_id: str | None = sm.Field(default=None, max_length=128)
    actor_account: uuid.UUID | None = None
    actor_login: str | None = sm.Field(default=None, max_length=64)
    actor_org: str | None = sm.Field(default=None, max_length=64)
    token_jti: str | None = sm.Field(default=None, max_length=128)
    action: str = sm.Field(max_length=64)
    resource_type: str | None = sm.Field(default=None, max_length=32)
    resource_id: str | None = sm.Field(default=None, max_length=128)
    member_ref: str | None = sm.Field(default=None, max_length=12)
    counterpart_org: str | None = sm.Field(default=None, max_length=64)
    outcome: str = sm.Field(max_length=16)
    http_status: int
    client_address: str | None = sm.Field(default=None, max_length=64)
    details: dict[str, Any] = sm.Field(default_factory=dict, sa_type=JSONType)


class AuditChainLink(SQLModel, table=True):
    """The sealed, linear order of entries: chain_hash = SHA-256(previous chain_hash + entry_hash)."""

    __tablename__ = "audit_chain"

    position: int = sm.Field(sa_column=sa.Column(sa.BigInteger(), primary_key=True, autoincrement=False))
    entry_seq: int = sm.Field(sa_type=sa.BigInteger, unique=True)
    entry_hash: str = sm.Field(max_length=64)
    chain_hash: str = sm.Field(max_length=64)
    sealed_at: datetime = ts_field(default_now=True)


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement of the chain's size and head hash at a moment."""

    __tablename__ = "audit_checkpoints"

    id: int | None = sm.Field(default=None, sa_column=sa.Column(BIGINT_PK, primary_key=True, autoincrement=True))
    size: int = sm.Field(sa_type=sa.BigInteger)
    head_hash: str = sm.Field(max_length=64)
    created_at: datetime = ts_field(default_now=True)
    jws: str


class AuditVerification(SQLModel, table=True):
    """The outcome of one full or resumed verification: what other committees' auditors read, where the next run
    resumes."""

    __tablename__ = "audit_verifications"

    id: int | None = sm.Field(default=None, sa_column=sa.Column(BIGINT_PK, primary_key=True, autoincrement=True))
    verified_at: datetime = ts_field(default_now=True)
    verified_by: str | None = sm.Field(default=None, max_length=64)
    ok: bool
    size: int = sm.Field(sa_type=sa.BigInteger)
    head_hash: str | None = sm.Field(default=None, max_length=64)
    resumed_from: int | None = sm.Field(default=None, sa_type=sa.BigInteger)
    unsealed: int = sm.Field(sa_type=sa.BigInteger)
    checkpoints_checked: int
    first_problem: dict[str, Any] | None = sm.Field(default=None, sa_type=JSONType)
