"""Members: the Khối keeps the records; each side reads its scope; residence moves notify both districts."""

from datetime import date
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Forbidden, NotFound, Unprocessable
from app.models.base import utcnow
from app.models.member import Member
from app.principal import Principal
from app.repositories.prepared import Prepared, prepared
from app.schemas.member import MemberUpsert
from app.services import notices
from app.services.organizations import KHOI_CODE, get_organization
from app.services.scoping import members_visible_to
from app.text import fold

_FIELDS = (
    "full_name",
    "birth_date",
    "citizen_id",
    "workplace_unit_code",
    "workplace_unit_name",
    "residence_org",
    "residence_ward",
    "residence_address",
    "residence_since",
    "residence_status",
    "residence_cell",
    "status_reason",
    "exemption_category",
)


def _not_found() -> NotFound:
    return NotFound("Không tìm thấy đảng viên trong phạm vi của tổ chức.", code="member_not_found")


async def get_member(*, session: AsyncSession, principal: Principal, card_no: str, for_update: bool = False) -> Member:
    """A member in the caller's scope, or 404 (another committee's members do not exist for the caller)."""
    stmt = select(Member).where(Member.party_card_no == card_no, members_visible_to(principal))
    if for_update:
        stmt = stmt.with_for_update()
    member = (await session.execute(stmt)).scalar_one_or_none()
    if member is None:
        raise _not_found()
    return member


class MemberScope(NamedTuple):
    """What a notice needs of its member: who it is and which district it lives in."""

    party_card_no: str
    residence_org: str


async def member_scope(*, session: AsyncSession, principal: Principal, card_no: str) -> MemberScope:
    """The member's card number and district, if in the caller's scope; otherwise 404, as in get_member."""
    stmt = prepared(
        ("member_scope", principal.is_khoi),
        lambda: Prepared(
            select(Member.party_card_no, Member.residence_org).where(
                Member.party_card_no == bindparam("card_no"), members_visible_to(principal, org=bindparam("org"))
            )
        ),
    )
    row = await stmt.fetchrow(session, {"card_no": card_no, "org": principal.org_code})
    if row is None:
        raise _not_found()
    return MemberScope(row["party_card_no"], row["residence_org"])


async def require_in_area(*, session: AsyncSession, principal: Principal, card_no: str) -> None:
    """A district writes only about members living in its area, also in threads it took part in before the member
    moved away (422 `member_not_in_area`); the Khối writes about all of its members."""
    if principal.is_khoi:
        return
    try:
        await member_scope(session=session, principal=principal, card_no=card_no)
    except NotFound:
        raise Unprocessable(
            "Đảng viên không còn cư trú trên địa bàn của tổ chức; không gửi thêm thông tin về đảng viên này.",
            code="member_not_in_area",
        ) from None


async def lives_in(*, session: AsyncSession, org_code: str, card_no: str) -> bool:
    """Whether a committee may still receive news about the member: the Khối always, a district while the member
    lives in its area."""
    residence = await session.scalar(select(Member.residence_org).where(Member.party_card_no == card_no))
    return org_code == KHOI_CODE or residence == org_code


async def upsert_member(
    *, session: AsyncSession, principal: Principal, card_no: str, data: MemberUpsert
) -> tuple[Member, bool]:
    """Create or update a member (Khối only); returns (member, created). A move notifies both districts."""
    if not principal.is_khoi:
        raise Forbidden("Chỉ Đảng ủy Khối cập nhật hồ sơ đảng viên.", code="khoi_only")
    district = await get_organization(session=session, code=data.residence_org)
    if district.kind != "district" or not district.is_active(date.today()):
        raise Unprocessable("Nơi cư trú phải là một quận/huyện/thị ủy đang hoạt động.", code="not_a_district")
    values = data.model_dump()
    for key in ("residence_status", "exemption_category"):
        if values[key] is not None:
            values[key] = str(values[key].value if hasattr(values[key], "value") else values[key])
    member = (
        await session.execute(select(Member).where(Member.party_card_no == card_no).with_for_update())
    ).scalar_one_or_none()
    if member is None:
        member = Member(
            party_card_no=card_no, name_folded=fold(data.full_name), ward_folded=fold(data.residence_ward), **values
        )
        session.add(member)
        await session.flush()
        return member, True
    changed = {k: v for k, v in values.items() if getattr(member, k) != v}
    if not changed:
        return member, False
    old_district = member.residence_org
    for key, value in changed.items():
        setattr(member, key, value)
    member.name_folded = fold(member.full_name)
    member.ward_folded = fold(member.residence_ward)
    member.version += 1
    member.updated_at = utcnow()
    await session.flush()
    if "residence_org" in changed:
        await notices.notify_residence_change(
            session=session, principal=principal, member=member, from_org=old_district
        )
    return member, False


async def search_members(
    *,
    session: AsyncSession,
    principal: Principal,
    q: str | None,
    card_no: str | None,
    ward: str | None,
    residence_org: str | None,
    status: str | None,
    after: str | None,
    limit: int,
) -> list[Member]:
    """Members in scope, by card number; name and ward match with or without diacritics."""
    stmt = select(Member).where(members_visible_to(principal)).order_by(Member.party_card_no).limit(limit)
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
