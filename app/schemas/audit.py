"""Schemas of audits: what the API takes and returns (the tables are in app.models.audit)."""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.models.audit import Outcome


class AuditEntryPublic(BaseModel):
    seq: int
    occurred_at: datetime
    request_id: str | None
    actor_account: uuid.UUID | None
    actor_login: str | None
    actor_org: str | None
    token_jti: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    member_ref: str | None
    counterpart_org: str | None
    outcome: Outcome
    http_status: int
    client_address: str | None
    details: dict[str, Any]


class AuditEntriesPublic(BaseModel):
    items: list[AuditEntryPublic]
    next_cursor: str | None = None


class CheckpointPublic(BaseModel):
    size: int
    head_hash: str
    created_at: datetime
    jws: str


class CheckpointsPublic(BaseModel):
    items: list[CheckpointPublic]


class VerificationProblem(BaseModel):
    position: int | None
    entry_seq: int | None
    problem: str
    detail: str


class VerificationReport(BaseModel):
    ok: bool
    size: int
    head_hash: str | None
    unsealed: int
    checkpoints_checked: int
    first_problem: VerificationProblem | None = None
    verified_at: datetime | None = Field(default=None, description="when this verification ran")
    resumed_from: int | None = Field(
        default=None,
        description="the chain was recomputed from this position on, starting from a signed checkpoint that an "
        "earlier verification had passed (null: from the first entry)",
    )
    summary: bool = Field(
        default=False, description="true: the last recorded verification, not recomputed for this call"
    )
