"""The committee registry in the database."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.organization import Organization


async def by_code(session: AsyncSession) -> dict[str, Organization]:
    """Every committee, by code."""
    return {o.code: o for o in (await session.execute(select(Organization))).scalars()}


async def listed(session: AsyncSession, *, kind: str | None) -> list[Organization]:
    """The registry, Khối first, then districts by code."""
    stmt = select(Organization).order_by(Organization.kind != "khoi", Organization.code)
    if kind:
        stmt = stmt.where(Organization.kind == kind)
    return list((await session.execute(stmt)).scalars())


async def get(session: AsyncSession, code: str) -> Organization | None:
    return await session.get(Organization, code)


def add(session: AsyncSession, org: Organization) -> None:
    """A new committee, stored with the session's next flush."""
    session.add(org)
