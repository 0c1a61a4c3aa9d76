"""Members in the database: the scope rule (which members a committee may see) and the statements on members."""

from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, bindparam, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.member import Member
from app.repositories.prepared import Prepared, shaped
from app.text import fold


def readable(*, khoi: bool, org: Any) -> ColumnElement[bool]:
    """The scope rule for members, and the only one: the Khối sees all of its members; a district those whose
    current residence is in its area. `org` is the caller's committee code (a bind parameter when prepared)."""
    if khoi:
        return true()
    return Member.residence_org == org


class MemberScope(NamedTuple):
    """What a notice needs of its member: who it is and which district it lives in."""

    party_card_no: str
    residence_org: str


@shaped
def _scope(khoi: bool) -> Prepared:
    return Prepared(
        select(Member.party_card_no, Member.residence_org).where(
            Member.party_card_no == bindparam("card_no"), readable(khoi=khoi, org=bindparam("org"))
        )
    )


async def scope_of(session: AsyncSession, *, khoi: bool, org: str, card_no: str) -> MemberScope | None:
    """The member's card number and district, if the caller may see the member."""
    row = await _scope(khoi).fetchrow(session, {"card_no": card_no, "org": org})
    return MemberScope(row["party_card_no"], row["residence_org"]) if row is not None else None


async def get_visible(
    session: AsyncSession, *, khoi: bool, org: str, card_no: str, for_update: bool = False
) -> Member | None:
    """A member the caller may see."""
    stmt = select(Member).where(Member.party_card_no == card_no, readable(khoi=khoi, org=org))
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_for_update(session: AsyncSession, card_no: str) -> Member | None:
    """Any member, locked for a change by the Khối."""
    stmt = select(Member).where(Member.party_card_no == card_no).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def residence_of(session: AsyncSession, card_no: str) -> str | None:
    """The district the member lives in now."""
    return await session.scalar(select(Member.residence_org).where(Member.party_card_no == card_no))


async def add(session: AsyncSession, member: Member) -> None:
    session.add(member)
    await session.flush()


async def search(
    session: AsyncSession,
    *,
    khoi: bool,
    org: str,
    q: str | None,
    card_no: str | None,
    ward: str | None,
    residence_org: str | None,
    status: str | None,
    after: str | None,
    limit: int,
) -> list[Member]:
    """Members in scope by card number; name and ward match with or without diacritics."""
    stmt = select(Member).where(readable(khoi=khoi, org=org)).order_by(Member.party_card_no).limit(limit)
    if q:
        stmt = stmt.where(Member.name_folded.contains(fold(q), autoescape=True))
    if card_no:
        stmt = stmt.where(Member.party_card_no == card_no)
    if ward:
        stmt = stmt.where(Member.ward_folded.contains(fold(ward), autoescape=True))
    if residence_org:
        stmt = stmt.where(Member.residence_org == residence_org)
    if status:
        stmt = stmt.where(Member.residence_status == status)
    if after:
        stmt = stmt.where(Member.party_card_no > after)
    return list((await session.execute(stmt)).scalars())


class Committees(NamedTuple):
    """The member's committee on each side of the exchange, now."""

    residence_org: str
    workplace_org: str


async def committees_of(session: AsyncSession, card_no: str) -> Committees | None:
    row = (
        await session.execute(select(Member.residence_org, Member.workplace_org).where(Member.party_card_no == card_no))
    ).first()
    return Committees(*row) if row is not None else None
