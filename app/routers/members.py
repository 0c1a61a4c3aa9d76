"""Members: a member's workplace committee writes; each side reads its scope."""

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response

from app.http import auditing
from app.http.deps import SessionDep, Worker
from app.http.pagination import CursorParam, LimitParam, after_value, fetch_page
from app.infra.config import settings
from app.models.member import CARD_NO_PATTERN, ResidenceStatus
from app.schemas.member import MemberPublic, MembersPublic, MemberUpsert
from app.services import members as svc
from app.services.organizations import example_codes

router = APIRouter(prefix="/api/v1/members", tags=["Đảng viên"])

CardNo = Annotated[str, Path(pattern=CARD_NO_PATTERN, description="số thẻ đảng viên", examples=["01234567"])]

_EXAMPLE = {
    "member": {
        "summary": "Đảng viên công tác tại Sở Tư pháp, cư trú tại phường Kim Mã",
        "value": {
            "full_name": "Nguyễn Văn An",
            "birth_date": "1985-04-12",
            "citizen_id": "001085012345",
            "workplace_unit_code": "so-tu-phap",
            "workplace_unit_name": "Đảng bộ Sở Tư pháp",
            "residence_org": example_codes().residence,
            "residence_ward": "Phường Kim Mã",
            "residence_address": "Số 12 ngõ 5 Kim Mã",
            "residence_since": "2020-06-01",
            "residence_status": "introduced",
        },
    }
}


@router.get(
    "",
    name="member.search",
    response_model=MembersPublic,
    summary="Tìm đảng viên trong phạm vi của tổ chức",
    description="Tìm theo họ tên có hoặc không dấu (`q=nguyen van an`), số thẻ, phường/xã.",
)
async def search_members(
    request: Request,
    session: SessionDep,
    principal: Worker,
    q: Annotated[str | None, Query(max_length=100, description="họ tên, có hoặc không dấu")] = None,
    card_no: Annotated[str | None, Query(pattern=CARD_NO_PATTERN)] = None,
    ward: Annotated[str | None, Query(max_length=120)] = None,
    residence_org: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[ResidenceStatus | None, Query()] = None,
    cursor: CursorParam = None,
    limit: LimitParam = settings.page_size_default,
) -> MembersPublic:
    after = after_value(cursor, str)

    def search(n: int):
        return svc.search_members(
            session=session,
            principal=principal,
            q=q,
            card_no=card_no,
            ward=ward,
            residence_org=residence_org,
            status=status.value if status else None,
            after=after,
            limit=n,
        )

    page = await fetch_page(search, limit)
    auditing.note_list(request, [m.party_card_no for m in page.items])
    return MembersPublic(
        items=[MemberPublic.model_validate(m, from_attributes=True) for m in page.items],
        next_cursor=page.next_cursor(lambda m: m.party_card_no),
    )


@router.get(
    "/{party_card_no}",
    name="member.read",
    response_model=MemberPublic,
    summary="Hồ sơ một đảng viên",
    responses={404: {"description": "Không có trong phạm vi của tổ chức"}},
)
async def get_member(request: Request, session: SessionDep, principal: Worker, party_card_no: CardNo) -> MemberPublic:
    member = await svc.get_member(session=session, principal=principal, card_no=party_card_no)
    auditing.note(request, member_ref=member.party_card_no, counterpart_org=principal.other_side_of(member))
    return MemberPublic.model_validate(member, from_attributes=True)


@router.put(
    "/{party_card_no}",
    name="member.upsert",
    response_model=MemberPublic,
    summary="Tạo hoặc cập nhật đảng viên (bên nơi làm việc)",
    description="Tổ chức bên nơi làm việc gọi; đảng viên mới thuộc hồ sơ của tổ chức này. Gửi lại cùng nội dung "
    "không thay đổi gì. Đổi nơi cư trú sẽ tự động gửi thông báo `member.residence_changed` cho cả nơi cũ và nơi "
    "mới. Số thẻ đã thuộc hồ sơ của tổ chức bên nơi làm việc khác: 409 `member_other_workplace`.",
    responses={
        201: {"model": MemberPublic, "description": "Đã tạo"},
        403: {"description": "Chỉ tổ chức bên nơi làm việc"},
        409: {"description": "Đảng viên thuộc hồ sơ của tổ chức bên nơi làm việc khác"},
        422: {"description": "Dữ liệu không hợp lệ"},
    },
)
async def put_member(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: Worker,
    party_card_no: CardNo,
    data: Annotated[MemberUpsert, Body(openapi_examples=_EXAMPLE)],
) -> MemberPublic:
    member, created = await svc.upsert_member(session=session, principal=principal, card_no=party_card_no, data=data)
    auditing.note(
        request,
        member_ref=member.party_card_no,
        counterpart_org=principal.other_side_of(member),
        status=201 if created else 200,
    )
    if created:
        response.status_code = 201
    return MemberPublic.model_validate(member, from_attributes=True)
