"""The committee registry in the database."""

from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.organization import Organization, OrgSide


async def by_code(session: AsyncSession) -> dict[str, Organization]:
    """Every committee, by code."""
    return {o.code: o for o in (await session.execute(select(Organization))).scalars()}


async def listed(session: AsyncSession, *, kind: str | None, side: str | None) -> list[Organization]:
    """The registry: the workplace side first, then by code."""
    workplace_first = case((Organization.side == OrgSide.workplace.value, 0), else_=1)
    stmt = select(Organization).order_by(workplace_first, Organization.code)
    if kind:
        stmt = stmt.where(Organization.kind == kind)
    if side:
        stmt = stmt.where(Organization.side == side)
    return list((await session.execute(stmt)).scalars())


async def get(session: AsyncSession, code: str) -> Organization | None:
    return await session.get(Organization, code)


def add(session: AsyncSession, org: Organization) -> None:
    """A new committee, stored with the session's next flush."""
    session.add(org)
