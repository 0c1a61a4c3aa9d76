"""The annual residence-comment round: one call to open it, a progress board to follow it."""

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Body, Request, Response

from app.http import auditing
from app.http.deps import Organiser, SessionDep, Worker
from app.schemas.feedback import FeedbackRoundCreate, FeedbackRoundPublic, RemindersSent
from app.services import feedback as svc

router = APIRouter(prefix="/api/v1/feedback-rounds", tags=["Đợt xin ý kiến nơi cư trú"])

_EXAMPLE = {"year": {"summary": "Đợt nhận xét cuối năm 2026", "value": {"year": 2026, "deadline": "2026-12-15"}}}


@router.post(
    "",
    name="feedback_round.start",
    response_model=FeedbackRoundPublic,
    status_code=201,
    summary="Mở đợt xin ý kiến nhận xét (bên nơi làm việc)",
    description="Đợt thuộc tổ chức bên nơi làm việc mở nó và chỉ gồm đảng viên của tổ chức đó. Tạo một phiếu "
    "`feedback.requested` cho mỗi đảng viên đủ điều kiện, gửi tổ chức nơi cư trú của đảng viên; việc tạo chạy nền "
    "theo lô, xem tiến độ ở GET. Gọi lại cùng năm và phạm vi không tạo "
    "trùng: chỉ bổ sung phiếu còn thiếu (200). Mỗi đảng viên chỉ được xin ý kiến một lần mỗi năm: đợt sau "
    "cùng năm bỏ qua người đã được hỏi (lý do `already_requested`).",
    responses={
        200: {"model": FeedbackRoundPublic, "description": "Đợt đã có; bổ sung phiếu còn thiếu"},
        403: {"description": "Chỉ tổ chức bên nơi làm việc"},
    },
)
async def start_round(
    request: Request,
    response: Response,
    background: BackgroundTasks,
    session: SessionDep,
    principal: Organiser,
    data: Annotated[FeedbackRoundCreate, Body(openapi_examples=_EXAMPLE)],
) -> FeedbackRoundPublic:
    rnd, created = await svc.start(session=session, principal=principal, data=data)
    response.status_code = 201 if created else 200
    auditing.note(request, resource_id=str(rnd.id), status=response.status_code)
    background.add_task(svc.run, rnd.id)  # after the commit; resumable by calling again
    if created:
        response.headers["Location"] = f"/api/v1/feedback-rounds/{rnd.id}"
    return await svc.progress(session=session, principal=principal, round_id=rnd.id)


@router.get(
    "/{round_id}",
    name="feedback_round.read",
    response_model=FeedbackRoundPublic,
    summary="Tiến độ: theo nơi cư trú và theo đơn vị (bên nơi cư trú chỉ thấy phần của mình)",
    responses={404: {"description": "Không có đợt này, hoặc đợt của tổ chức bên nơi làm việc khác"}},
)
async def get_round(session: SessionDep, principal: Worker, round_id: uuid.UUID) -> FeedbackRoundPublic:
    return await svc.progress(session=session, principal=principal, round_id=round_id)


@router.post(
    "/{round_id}/reminders",
    name="feedback_round.remind",
    response_model=RemindersSent,
    summary="Nhắc các phiếu quá hạn ngay (mỗi phiếu tối đa một lần mỗi chu kỳ)",
    responses={
        403: {"description": "Chỉ tổ chức bên nơi làm việc"},
        404: {"description": "Không có đợt này, hoặc đợt của tổ chức khác"},
    },
)
async def remind(session: SessionDep, principal: Organiser, round_id: uuid.UUID) -> RemindersSent:
    return RemindersSent(sent=await svc.remind(session=session, principal=principal, round_id=round_id))
