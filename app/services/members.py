"""Members: a member's workplace committee keeps the record; each side reads its scope; a move notifies both
residence committees."""

from app.errors import Conflict, NotFound, Unprocessable
from app.infra.clock import today
from app.infra.db import Session
from app.models.base import utcnow
from app.models.member import Member
from app.models.organization import OrgSide
from app.principal import Principal
from app.repositories import members as rows
from app.schemas.member import MemberUpsert
from app.services import notices, policy
from app.services.organizations import get_organization
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


async def get_member(*, session: Session, principal: Principal, card_no: str) -> Member:
    """A member in the caller's scope, or 404 (another committee's members do not exist for the caller)."""
    member = await rows.get_visible(session, side=principal.org_side, org=principal.org_code, card_no=card_no)
    if member is None:
        raise _not_found()
    return member


async def upsert_member(
    *, session: Session, principal: Principal, card_no: str, data: MemberUpsert
) -> tuple[Member, bool]:
    """Create or update a member (its workplace committee only); returns (member, created). A move notifies both
    residence committees."""
    policy.require_workplace(principal, "Chỉ tổ chức bên nơi làm việc cập nhật hồ sơ đảng viên.")
    residence = await get_organization(session=session, code=data.residence_org)
    if residence.side != OrgSide.residence or not residence.is_active(today()):
        raise Unprocessable(
            "Nơi cư trú phải là một tổ chức bên nơi cư trú đang hoạt động (quận/huyện/thị ủy hoặc đảng ủy phường/xã).",
            code="not_a_district",
        )
    values = data.model_dump()
    for key in ("residence_status", "exemption_category"):
        if values[key] is not None:
            values[key] = str(values[key].value if hasattr(values[key], "value") else values[key])
    member = await rows.get_for_update(session, card_no)
    if member is None:
        member = Member(
            party_card_no=card_no,
            workplace_org=principal.org_code,
            name_folded=fold(data.full_name),
            ward_folded=fold(data.residence_ward),
            **values,
        )
        await rows.add(session, member)
        return member, True
    if member.workplace_org != principal.org_code:
        # Card numbers are unique: the member is on another workplace committee's records. Never taken over here;
        # which committee holds it is not said.
        raise Conflict(
            "Số thẻ này thuộc hồ sơ của một tổ chức bên nơi làm việc khác; không thể tạo hoặc sửa tại đây.",
            code="member_other_workplace",
        )
    changed = {k: v for k, v in values.items() if getattr(member, k) != v}
    if not changed:
        return member, False
    old_residence = member.residence_org
    for key, value in changed.items():
        setattr(member, key, value)
    member.name_folded = fold(member.full_name)
    member.ward_folded = fold(member.residence_ward)
    member.version += 1
    member.updated_at = utcnow()
    await session.flush()
    if "residence_org" in changed:
        await notices.notify_residence_change(
            session=session, principal=principal, member=member, from_org=old_residence
        )
    return member, False


async def search_members(
    *,
    session: Session,
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
    return await rows.search(
        session,
        side=principal.org_side,
        org=principal.org_code,
        q=q,
        card_no=card_no,
        ward=ward,
        residence_org=residence_org,
        status=status,
        after=after,
        limit=limit,
    )
