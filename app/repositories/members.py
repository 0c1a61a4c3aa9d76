"""Members in the database: the scope rule (which members a committee may see) and the statements on members."""

from datetime import date
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, bindparam, false, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.member import Member
from app.models.organization import Organization, OrgSide
from app.repositories.prepared import Prepared, shaped
from app.text import fold


def readable(*, side: str | None, org: Any) -> ColumnElement[bool]:
    """The scope rule for members, and the only one: a workplace-side committee sees the members whose workplace
    committee it is; a residence-side committee those whose current residence is in its area; a committee with no
    side none. `org` is the caller's committee code (a bind parameter when prepared)."""
    if side == OrgSide.workplace:
        return Member.workplace_org == org
    if side == OrgSide.residence:
        return Member.residence_org == org
    return false()


class MemberScope(NamedTuple):
    """What a notice needs of its member: who it is and its committee on each side (and when a registry edition
    retired either, if it did)."""

    party_card_no: str
    workplace_org: str
    residence_org: str
    workplace_ended: date | None = None
    residence_ended: date | None = None

    def ended(self, org: str) -> date | None:
        """The day the member's committee `org` ended (None: it has not)."""
        if org == self.workplace_org:
            return self.workplace_ended
        return self.residence_ended if org == self.residence_org else None


def _ended(committee) -> Any:
    return select(Organization.valid_to).where(Organization.code == committee).scalar_subquery()


_SCOPE_COLUMNS = (
    Member.party_card_no,
    Member.workplace_org,
    Member.residence_org,
    _ended(Member.workplace_org).label("workplace_ended"),
    _ended(Member.residence_org).label("residence_ended"),
)


@shaped
def _scope(side: str | None) -> Prepared:
    return Prepared(
        select(*_SCOPE_COLUMNS).where(
            Member.party_card_no == bindparam("card_no"), readable(side=side, org=bindparam("org"))
        )
    )


async def scope_of(session: AsyncSession, *, side: str | None, org: str, card_no: str) -> MemberScope | None:
    """The member's card number and committees, if the caller may see the member."""
    row = await _scope(side).fetchrow(session, {"card_no": card_no, "org": org})
    return MemberScope(*(row[c.key] for c in _SCOPE_COLUMNS)) if row is not None else None


async def get_visible(
    session: AsyncSession, *, side: str | None, org: str, card_no: str, for_update: bool = False
) -> Member | None:
    """A member the caller may see."""
    stmt = select(Member).where(Member.party_card_no == card_no, readable(side=side, org=org))
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_for_update(session: AsyncSession, card_no: str) -> Member | None:
    """Any member, locked for a change by its workplace committee (the caller checks that it is)."""
    stmt = select(Member).where(Member.party_card_no == card_no).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def committees_of(session: AsyncSession, card_no: str) -> MemberScope | None:
    """The member's committees now, whoever asks (for a decision the caller's scope does not cover)."""
    row = (await session.execute(select(*_SCOPE_COLUMNS).where(Member.party_card_no == card_no))).first()
    return MemberScope(*row) if row is not None else None


async def add(session: AsyncSession, member: Member) -> None:
    session.add(member)
    await session.flush()


async def search(
    session: AsyncSession,
    *,
    side: str | None,
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
    stmt = select(Member).where(readable(side=side, org=org)).order_by(Member.party_card_no).limit(limit)
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
