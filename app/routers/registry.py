"""Registry editions: the operator's admins plan and apply a re-organisation of the committee registry."""

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response

from app.http import auditing
from app.http.deps import Admin, SessionDep
from app.schemas.registry import Edition, EditionApplied, EditionPlan, EditionsPublic
from app.services import registry as svc

router = APIRouter(prefix="/api/v1/registry", tags=["Danh mục tổ chức"])

_ERRORS = {
    403: {"description": "Chỉ quản trị viên của tổ chức vận hành hệ thống"},
    422: {"description": "Ấn bản không hợp lệ (mã lỗi edition_…)"},
}

_EXAMPLE = {
    "example": {
        "summary": "Ấn bản mẫu kèm theo phần mềm (VÍ DỤ, không phải danh mục chính thức)",
        "value": svc.shipped_example(),
    }
}


@router.post(
    "/plan",
    name="registry.plan",
    response_model=EditionPlan,
    summary="Xem trước một ấn bản danh mục: tổ chức thêm/giải thể, đảng viên chuyển, thông báo chuyển tiếp",
    description="Chỉ đọc, không ghi gì. Liệt kê đầy đủ đảng viên không xếp được (phường/đơn vị không có trong bảng).",
    responses=_ERRORS,
)
async def plan_edition(
    request: Request,
    session: SessionDep,
    admin: Admin,
    edition: Annotated[Edition, Body(openapi_examples=_EXAMPLE)],
) -> EditionPlan:
    result = await svc.plan(session=session, principal=admin, edition=edition)
    auditing.note(request, resource_id=edition.edition, details=svc.audit_details(result))
    return result


@router.post(
    "/editions",
    name="registry.apply",
    response_model=EditionApplied,
    status_code=201,
    summary="Áp dụng một ấn bản danh mục (một giao dịch; áp dụng lại cùng ấn bản không thay đổi gì)",
    description="Cùng mã và cùng nội dung lần nữa: 200, `already_applied`. Cùng mã, nội dung khác: 409 "
    "`edition_conflict`. Ấn bản chưa đến ngày hiệu lực: 422 `edition_not_yet_effective`.",
    responses={**_ERRORS, 200: {"model": EditionApplied, "description": "Đã áp dụng trước đó; không thay đổi gì"}},
)
async def apply_edition(
    request: Request,
    response: Response,
    session: SessionDep,
    admin: Admin,
    edition: Annotated[Edition, Body(openapi_examples=_EXAMPLE)],
) -> EditionApplied:
    result, changed = await svc.apply(session=session, principal=admin, edition=edition)
    response.status_code = 201 if changed else 200
    auditing.note(request, resource_id=edition.edition, status=response.status_code, details=svc.audit_details(result))
    return result


@router.get(
    "/editions",
    name="registry.editions",
    response_model=EditionsPublic,
    summary="Các ấn bản danh mục đã áp dụng",
    responses=_ERRORS,
)
async def list_editions(session: SessionDep, admin: Admin) -> EditionsPublic:
    return EditionsPublic(items=await svc.list_editions(session=session, principal=admin))
