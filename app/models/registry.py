"""Registry editions: a re-organisation applied as data. Which editions were applied, which committee succeeded
which, which members were re-assigned, and which open notices passed to a successor. Never updated, never deleted:
this is the history that lets a successor read its predecessors' record and reports show both."""

import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
import sqlmodel as sm
from sqlmodel import SQLModel

from app.models.base import JSONType, ts_field


class RegistryEdition(SQLModel, table=True):
    """One applied edition: its id, the SHA-256 of its canonical content (same id, other content: refused), and
    what applying it changed."""

    __tablename__ = "registry_editions"

    id: str = sm.Field(primary_key=True, max_length=64)
    sha256: str = sm.Field(max_length=64)
    effective: date
    description: str = sm.Field(max_length=2000)
    example: bool = False
    content: dict[str, Any] = sm.Field(sa_type=JSONType, description="the edition as applied (canonical form)")
    summary: dict[str, Any] = sm.Field(sa_type=JSONType, description="what applying it changed")
    applied_at: datetime = ts_field(default_now=True)
    applied_by: str = sm.Field(max_length=64, description="the admin's login, or the operator command")
    applied_by_account: uuid.UUID | None = None


class OrganizationSuccession(SQLModel, table=True):
    """`successor` took over from `predecessor`: directly (the edition named it), or through a later edition that
    retired a direct successor (kept so that a successor's successor still reads the whole history)."""

    __tablename__ = "organization_successions"
    __table_args__ = (sa.Index("ix_organization_successions_successor", "successor", "predecessor"),)

    predecessor: str = sm.Field(foreign_key="organizations.code", primary_key=True, max_length=64)
    successor: str = sm.Field(foreign_key="organizations.code", primary_key=True, max_length=64)
    edition: str = sm.Field(foreign_key="registry_editions.id", max_length=64)
    direct: bool = True


class MemberReassignment(SQLModel, table=True):
    """A member moved from a retired committee to its successor by an edition, on one side of the exchange."""

    __tablename__ = "member_reassignments"
    __table_args__ = (sa.Index("ix_member_reassignments_member", "member_card_no"),)

    edition: str = sm.Field(foreign_key="registry_editions.id", primary_key=True, max_length=64)
    member_card_no: str = sm.Field(foreign_key="members.party_card_no", primary_key=True, max_length=12)
    side: str = sm.Field(primary_key=True, max_length=16)
    from_org: str = sm.Field(foreign_key="organizations.code", max_length=64)
    to_org: str = sm.Field(foreign_key="organizations.code", max_length=64)


class NoticeTransfer(SQLModel, table=True):
    """An open notice addressed to a retired committee passed to the member's successor: the transfer notice
    (kind `notice.transferred`, in the original's thread) and the original it carries."""

    __tablename__ = "notice_transfers"
    __table_args__ = (sa.Index("ix_notice_transfers_original_id", "original_id"),)

    transfer_id: uuid.UUID = sm.Field(foreign_key="notices.id", primary_key=True)
    original_id: uuid.UUID = sm.Field(foreign_key="notices.id")
    edition: str = sm.Field(foreign_key="registry_editions.id", max_length=64)
    from_org: str = sm.Field(max_length=64)
    to_org: str = sm.Field(max_length=64)
    original_sender: str = sm.Field(max_length=64, description="sees the transfer in its thread")
    original_kind: str = sm.Field(max_length=40)
    created_at: datetime = ts_field(default_now=True)
