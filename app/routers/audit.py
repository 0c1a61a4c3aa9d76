"""The audit log for auditors: entries, export, verification, signed checkpoints."""

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from app.http.deps import Auditor, SessionDep
from app.http.pagination import CursorParam, LimitParam, after_value, fetch_page
from app.infra.config import settings
from app.infra.db import db
from app.models.audit import Outcome
from app.schemas.audit import (
    AuditEntriesPublic,
    AuditEntryPublic,
    CheckpointPublic,
    CheckpointsPublic,
    VerificationReport,
)
from app.services import audit as svc
from app.text import Instant

router = APIRouter(prefix="/api/v1/audit", tags=["Nhật ký kiểm tra"])

_ERRORS = {401: {"description": "Chưa xác thực"}, 403: {"description": "Cần vai trò auditor"}}


Org = Annotated[str | None, Query(max_length=64, description="tổ chức thực hiện hoặc liên quan")]
Actor = Annotated[str | None, Query(max_length=64, description="tên đăng nhập của tài khoản thực hiện")]
Action = Annotated[str | None, Query(max_length=64, examples=["notice.push"])]
ResourceType = Annotated[str | None, Query(max_length=32, examples=["notice"])]
ResourceId = Annotated[str | None, Query(max_length=128)]
MemberRef = Annotated[str | None, Query(alias="member", max_length=12, description="số thẻ đảng viên")]
OutcomeQ = Annotated[Outcome | None, Query()]
Since = Annotated[Instant | None, Query(description="từ thời điểm (ISO 8601 có múi giờ)")]
Until = Annotated[Instant | None, Query(description="trước thời điểm")]


async def entry_filter(
    org: Org = None,
    actor: Actor = None,
    action: Action = None,
    resource_type: ResourceType = None,
    resource_id: ResourceId = None,
    member: MemberRef = None,
    outcome: OutcomeQ = None,
    since: Since = None,
    until: Until = None,
) -> svc.EntryFilter:
    """The filters shared by the listing and the export."""
    return svc.EntryFilter(
        org=org,
        actor=actor,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        member_ref=member,
        outcome=outcome.value if outcome else None,
        since=since,
        until=until,
    )


Filters = Annotated[svc.EntryFilter, Depends(entry_filter)]


@router.get(
    "/entries",
    name="audit.entries",
    response_model=AuditEntriesPublic,
    responses=_ERRORS,
    summary="Tra cứu nhật ký: ai đã đọc, ghi gì, khi nào",
)
async def list_entries(
    session: SessionDep,
    auditor: Auditor,
    filters: Filters,
    cursor: CursorParam = None,
    limit: LimitParam = settings.page_size_default,
) -> AuditEntriesPublic:
    after = after_value(cursor, int)
    page = await fetch_page(
        lambda n: svc.list_entries(session=session, principal=auditor, after=after, limit=n, filters=filters), limit
    )
    return AuditEntriesPublic(
        items=[AuditEntryPublic.model_validate(r, from_attributes=True) for r in page.items],
        next_cursor=page.next_cursor(lambda r: r.seq),
    )


@router.get(
    "/entries/export",
    name="audit.export",
    response_class=StreamingResponse,
    responses={
        **_ERRORS,
        200: {"content": {"application/x-ndjson": {}}, "description": "JSON Lines, một mục một dòng"},
    },
    summary="Xuất nhật ký (JSON Lines, truyền dần)",
)
async def export_entries(_session: SessionDep, auditor: Auditor, filters: Filters) -> StreamingResponse:
    # The request session is here for the export's own audit entry, committed before the first line is sent.
    async def lines():
        # A session of its own: the request's session has committed (with this export's audit entry) by now.
        async with db.sessions() as session:
            async for entry in svc.stream_entries(session=session, principal=auditor, filters=filters):
                row = AuditEntryPublic.model_validate(entry, from_attributes=True).model_dump(mode="json")
                yield json.dumps(row, ensure_ascii=False) + "\n"

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
    )


@router.get(
    "/verify",
    name="audit.verify",
    response_model=VerificationReport,
    responses={**_ERRORS, 404: {"description": "Nhật ký chưa được kiểm tra lần nào (kiểm toán viên tổ chức khác)"}},
    summary="Kiểm tra toàn vẹn nhật ký",
    description="Kiểm toán viên của tổ chức vận hành (`operator`): niêm phong các mục mới, tính lại chuỗi băm theo "
    "từng trang (không chặn các yêu cầu khác), đối chiếu mọi checkpoint đã ký (của dịch vụ và các checkpoint bạn đã "
    "lưu, gửi qua `checkpoint`), báo mục hỏng đầu tiên và ghi lại kết quả. `resume=true`: chỉ tính lại phần sau "
    "checkpoint đã ký mới nhất mà một lần kiểm tra thành công trước đó đã bao gồm (`resumed_from`). Kiểm toán viên "
    "tổ chức khác nhận kết quả của lần kiểm tra gần nhất (`summary: true`), không khởi động việc tính lại.",
)
async def verify(
    session: SessionDep,
    auditor: Auditor,
    checkpoint: Annotated[list[str], Query(max_length=20, description="checkpoint (JWS) đã lưu")] = (),
    resume: Annotated[bool, Query(description="tiếp tục từ checkpoint đã kiểm tra gần nhất")] = False,
) -> VerificationReport:
    return await svc.verify_for(
        session=session, sessions=db.sessions, principal=auditor, presented=list(checkpoint), resume=resume
    )


@router.get(
    "/checkpoints",
    name="audit.checkpoints",
    response_model=CheckpointsPublic,
    responses=_ERRORS,
    summary="Các checkpoint đã ký (mới nhất trước)",
)
async def list_checkpoints(
    session: SessionDep,
    _auditor: Auditor,
    limit: Annotated[int, Query(ge=1, le=settings.page_size_max)] = settings.page_size_default,
) -> CheckpointsPublic:
    rows = await svc.list_checkpoints(session=session, limit=limit)
    return CheckpointsPublic(items=[CheckpointPublic.model_validate(r, from_attributes=True) for r in rows])


@router.post(
    "/checkpoints",
    name="audit.checkpoint",
    response_model=CheckpointPublic,
    status_code=201,
    responses=_ERRORS,
    summary="Niêm phong và ký một checkpoint ngay bây giờ",
)
async def create_checkpoint(session: SessionDep, _auditor: Auditor) -> CheckpointPublic:
    await svc.seal(session=session)
    return CheckpointPublic.model_validate(await svc.create_checkpoint(session=session), from_attributes=True)
