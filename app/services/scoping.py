"""The one place that decides what a caller's committee may see. Every query of scoped rows goes through here."""

from typing import Any

from sqlalchemy import ColumnElement, or_, select, true

from app.models.audit import AuditEntry
from app.models.document import Document, NoticeDocument
from app.models.member import Member
from app.models.notice import Notice
from app.principal import Principal

# `org` stands for the caller's committee code; statements prepared once pass a bind parameter here.


def members_visible_to(principal: Principal, org: Any = None) -> ColumnElement[bool]:
    """The Khối sees all of its members; a district sees those whose current residence is in its area."""
    if principal.is_khoi:
        return true()
    return Member.residence_org == (principal.org_code if org is None else org)


def notices_visible_to(principal: Principal, org: Any = None) -> ColumnElement[bool]:
    """A notice is seen only by its sender and its recipient committee."""
    org = principal.org_code if org is None else org
    return or_(Notice.sender_org == org, Notice.recipient_org == org)


def may_see_member(principal: Principal, member: Member) -> bool:
    """The same rule as members_visible_to, for a row already loaded."""
    return principal.is_khoi or member.residence_org == principal.org_code


def audit_entries_visible_to(principal: Principal) -> ColumnElement[bool]:
    """A Khối auditor sees everything; a district auditor its own committee's actions and those about it."""
    if principal.is_khoi:
        return true()
    return or_(AuditEntry.actor_org == principal.org_code, AuditEntry.counterpart_org == principal.org_code)


def documents_visible_to(principal: Principal) -> ColumnElement[bool]:
    """A document is seen by its supplier and by both parties of any notice that carries it."""
    carried = (
        select(NoticeDocument.document_id)
        .join(Notice, Notice.id == NoticeDocument.notice_id)
        .where(notices_visible_to(principal))
    )
    return or_(Document.supplier_org == principal.org_code, Document.id.in_(carried))
