"""Accounts in the database: the per-request lookup of the caller's account (prepared: every authenticated
request runs it)."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.account import Account
from app.models.organization import Organization
from app.repositories.prepared import Prepared

_CALLER = Prepared(
    select(
        Account.login,
        Account.kind,
        Account.org_code,
        Account.roles,
        Account.tokens_valid_after,
        Organization.kind.label("org_kind"),
    )
    .join(Organization, Organization.code == Account.org_code)
    .where(and_(Account.id == bindparam("account_id"), Account.disabled_at.is_(None)))
)


@dataclass(frozen=True, slots=True)
class CallerRow:
    """What a request needs of its caller's enabled account."""

    login: str
    kind: str
    org_code: str
    roles: list[str]
    tokens_valid_after: datetime | None
    org_kind: str


async def enabled_caller(session: AsyncSession, account_id: uuid.UUID) -> CallerRow | None:
    """The enabled account `account_id` and its committee's kind."""
    row = await _CALLER.fetchrow(session, {"account_id": account_id})
    return CallerRow(**row) if row is not None else None
