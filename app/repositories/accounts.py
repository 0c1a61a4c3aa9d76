"""Accounts in the database: the scope rule for account administration, and the per-request lookup of the caller's
account (prepared: every authenticated request runs it)."""

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, and_, bindparam, select, true
from sqlalchemy.exc import IntegrityError
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
        Organization.side.label("org_side"),
        Organization.operator,
        Organization.valid_to.label("org_valid_to"),
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
    org_side: str | None
    operator: bool
    org_valid_to: date | None  # the committee's last day was the day before (a registry edition retired it)


async def enabled_caller(session: AsyncSession, account_id: uuid.UUID) -> CallerRow | None:
    """The enabled account `account_id`, its committee's side and operator flag."""
    row = await _CALLER.fetchrow(session, {"account_id": account_id})
    return CallerRow(**row) if row is not None else None


def readable(*, all_orgs: bool, org: str) -> ColumnElement[bool]:
    """The scope rule for accounts, and the only one: `all_orgs` (the operator's admins) every committee's accounts,
    otherwise the caller's own committee's."""
    return true() if all_orgs else Account.org_code == org


class LoginTaken(Exception):
    """Another account already has this login."""


async def add(session: AsyncSession, account: Account) -> None:
    """Store a new account; LoginTaken when its login exists (the transaction goes on)."""
    session.add(account)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise LoginTaken from None


async def page(
    session: AsyncSession, *, all_orgs: bool, org: str, org_code: str | None, after: str | None, limit: int
) -> list[Account]:
    """Accounts in scope, by login, after `after`."""
    stmt = select(Account).where(readable(all_orgs=all_orgs, org=org)).order_by(Account.login).limit(limit)
    if org_code:
        stmt = stmt.where(Account.org_code == org_code)
    if after:
        stmt = stmt.where(Account.login > after)
    return list((await session.execute(stmt)).scalars())


async def get_visible(session: AsyncSession, *, all_orgs: bool, org: str, account_id: uuid.UUID) -> Account | None:
    stmt = select(Account).where(Account.id == account_id, readable(all_orgs=all_orgs, org=org))
    return (await session.execute(stmt)).scalar_one_or_none()


async def committee_valid_to(session: AsyncSession, org_code: str) -> date | None:
    """When the committee ended (None: it has not)."""
    return await session.scalar(select(Organization.valid_to).where(Organization.code == org_code))


async def by_login_detached(session: AsyncSession, login: str) -> Account | None:
    """The account with this login, detached from the session (still readable once its transaction has ended)."""
    account = (await session.execute(select(Account).where(Account.login == login))).scalar_one_or_none()
    if account is not None:
        session.expunge(account)
    return account
