"""Notices: the structured messages the two sides exchange, one kind per step of the residence lifecycle."""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
import sqlmodel as sm
from sqlmodel import SQLModel

from app.models.base import JSONType, ts_field


class NoticeKind(StrEnum):
    member_introduced = "member.introduced"
    member_accepted = "member.accepted"
    member_not_accepted = "member.not_accepted"
    member_residence_changed = "member.residence_changed"
    feedback_requested = "feedback.requested"
    feedback_given = "feedback.given"
    feedback_reminder = "feedback.reminder"
    violation_reported = "violation.reported"
    discipline_decided = "discipline.decided"
    info_requested = "info.requested"
    info_provided = "info.provided"
    notice_corrected = "notice.corrected"
    # Sent by the service when a registry edition retires the recipient of an open notice: the successor gets it.
    notice_transferred = "notice.transferred"


class NoticeStatus(StrEnum):
    sent = "sent"
    delivered = "delivered"
    acknowledged = "acknowledged"
    answered = "answered"


class Notice(SQLModel, table=True):
    __tablename__ = "notices"
    __table_args__ = (
        sa.Index("ix_notices_inbox", "recipient_org", "position"),
        sa.Index("ix_notices_outbox", "sender_org", "position"),
        sa.Index("ux_notices_position", "position", unique=True),
        # The notices still waiting for a position: small, read by the sequencer only.
        sa.Index(
            "ix_notices_unpositioned",
            "seq",
            postgresql_where=sa.text("position IS NULL"),
            sqlite_where=sa.text("position IS NULL"),
        ),
    )

    # seq identifies a row (assigned at insert); position orders pulls (assigned after commit, see
    # app/services/sequencer.py).
    seq: int | None = sm.Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    )
    id: uuid.UUID = sm.Field(default_factory=uuid.uuid4, unique=True)
    # The notice's place in the exchange log: null until the sequencer numbers it, after its commit; gapless and
    # increasing in the order the sequencer found the rows committed. Pulls return only positioned notices.
    position: int | None = sm.Field(default=None, sa_column=sa.Column(sa.BigInteger(), nullable=True))
    kind: str = sm.Field(max_length=40, index=True)
    sender_org: str = sm.Field(foreign_key="organizations.code", max_length=64)
    recipient_org: str = sm.Field(foreign_key="organizations.code", max_length=64)
    member_card_no: str = sm.Field(foreign_key="members.party_card_no", max_length=12, index=True)
    thread_id: uuid.UUID = sm.Field(index=True)
    in_reply_to: uuid.UUID | None = None
    supersedes: uuid.UUID | None = None
    payload: dict[str, Any] = sm.Field(sa_type=JSONType)
    due_date: date | None = None
    status: str = sm.Field(default=NoticeStatus.sent.value, max_length=16)
    created_by: uuid.UUID | None = None
    created_at: datetime = ts_field(default_now=True)
    delivered_at: datetime | None = ts_field(nullable=True)
    acknowledged_at: datetime | None = ts_field(nullable=True)
    acknowledged_by: uuid.UUID | None = None
    answered_at: datetime | None = ts_field(nullable=True)
    # The service's JWS over the notice's canonical content and its documents' hashes, made once at insert.
    signature: str | None = None


# ---- structured fields, one model per kind ---------------------------------------------------------------


# ---- requests: a discriminated union on `kind` -------------------------------------------------------------


# ---- responses ---------------------------------------------------------------------------------------------
