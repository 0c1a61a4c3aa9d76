"""Notices: push, pull incrementally, read, acknowledge, reply."""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from app.errors import BadRequest
from app.http import auditing, idempotency
from app.http.deps import SessionDep, Worker
from app.http.pagination import Page, decode_cursor, encode_cursor, fetch_page
from app.infra.config import settings
from app.infra.db import Session
from app.models.document import Document
from app.models.member import CARD_NO_PATTERN
from app.models.notice import Notice, NoticeKind, NoticeStatus
from app.principal import Principal
from app.schemas.notice import NoticeCreate, NoticeCreated, NoticeDetail, NoticePublic, NoticesPublic, ReplyCreate
from app.services import notices as svc
from app.services.organizations import example_codes
from app.text import Instant

router = APIRouter(prefix="/api/v1/notices", tags=["Thông báo"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="cùng khóa và cùng nội dung: trả lại đúng phản hồi lần đầu, không tạo bản ghi thứ hai",
    ),
]

_NOT_FOUND = {404: {"description": "Không có, hoặc không phải thông báo của tổ chức"}}
_WRITE_ERRORS = {
    403: {"description": "Không được gửi loại/chiều thông báo này"},
    404: {"description": "Đảng viên hoặc thông báo không thuộc phạm vi"},
    409: {"description": "Trùng Idempotency-Key đang xử lý, hoặc xung đột trạng thái"},
    422: {"description": "Dữ liệu không hợp lệ hoặc Idempotency-Key dùng cho nội dung khác"},
}

_PUSH_EXAMPLES = {
    "introduced": {
        "summary": "Bên nơi làm việc giới thiệu đảng viên về nơi cư trú",
        "value": {
            "kind": "member.introduced",
            "member_card_no": "01234567",
            "payload": {
                "letter_no": "125-GGT/ĐU",
                "issued_on": "2026-11-02",
                "ward": "Phường Kim Mã",
                "address": "Số 12 ngõ 5 Kim Mã",
                "residential_group": "Tổ dân phố số 7",
            },
        },
    },
    "feedback_requested": {
        "summary": "Bên nơi làm việc xin ý kiến nhận xét nơi cư trú",
        "value": {
            "kind": "feedback.requested",
            "member_card_no": "01234567",
            "payload": {"year": 2026, "due_date": "2026-12-15", "note": "Phục vụ đánh giá, xếp loại cuối năm"},
        },
    },
    "violation": {
        "summary": "Cảnh báo sớm dấu hiệu vi phạm",
        "value": {
            "kind": "violation.reported",
            "member_card_no": "01234567",
            "payload": {
                "summary": "Không tham gia sinh hoạt chi bộ nơi cư trú 3 kỳ liên tiếp",
                "observed_on": "2026-10-30",
                "severity": "medium",
            },
        },
    },
    "discipline": {
        "summary": "Thông báo quyết định kỷ luật",
        "value": {
            "kind": "discipline.decided",
            "member_card_no": "01234567",
            "payload": {
                "form": "reprimand",
                "decision_no": "45-QĐ/ĐU",
                "decided_on": "2026-11-10",
                "authority": "Ban Thường vụ Đảng ủy",
            },
        },
    },
    "residence_changed": {
        "summary": "Bên nơi cư trú báo đảng viên đã chuyển nơi ở",
        "value": {
            "kind": "member.residence_changed",
            "member_card_no": "01234567",
            "payload": {
                "from_org": example_codes().residence,
                "to_org": example_codes().other_residence,
                "moved_on": "2026-11-01",
            },
        },
    },
    "info_requested": {
        "summary": "Đề nghị cung cấp thông tin",
        "value": {
            "kind": "info.requested",
            "member_card_no": "01234567",
            "payload": {"question": "Đề nghị cho biết địa chỉ cư trú mới của đồng chí.", "due_date": "2026-12-01"},
        },
    },
    "corrected": {
        "summary": "Đính chính thông báo đã gửi",
        "value": {
            "kind": "notice.corrected",
            "member_card_no": "01234567",
            "supersedes": "3f1c2a9e-8d4b-4c1e-9a7f-2b6d5e4c3a21",
            "payload": {
                "reason": "Sai số giấy giới thiệu",
                "corrected": {
                    "letter_no": "126-GGT/ĐU",
                    "issued_on": "2026-11-02",
                    "ward": "Phường Kim Mã",
                    "address": "Số 12 ngõ 5 Kim Mã",
                },
            },
        },
    },
}

_REPLY_EXAMPLES = {
    "accepted": {
        "summary": "Bên nơi cư trú xác nhận đã tiếp nhận",
        "value": {
            "kind": "member.accepted",
            "payload": {"ward": "Phường Kim Mã", "cell": "Chi bộ Tổ dân phố số 7", "accepted_on": "2026-11-12"},
        },
    },
    "not_accepted": {
        "summary": "Bên nơi cư trú báo không tiếp nhận",
        "value": {
            "kind": "member.not_accepted",
            "payload": {"reason": "Đảng viên không cư trú tại địa chỉ đã giới thiệu"},
        },
    },
    "feedback_given": {
        "summary": "Chi bộ nơi cư trú gửi nhận xét",
        "value": {
            "kind": "feedback.given",
            "payload": {
                "year": 2026,
                "cell": "Chi bộ Tổ dân phố số 7",
                "reviewed_on": "2026-12-05",
                "comments": "Gương mẫu thực hiện nghĩa vụ công dân, tích cực tham gia sinh hoạt nơi cư trú.",
            },
        },
    },
    "info_provided": {
        "summary": "Trả lời đề nghị cung cấp thông tin",
        "value": {
            "kind": "info.provided",
            "payload": {"answer": "Đồng chí đã chuyển đến phường Dịch Vọng từ tháng 10."},
        },
    },
}


def _noted(request: Request, principal, notice: NoticePublic) -> NoticePublic:
    """Name the notice, its member and the other party in this request's audit entry."""
    other = notice.recipient_org if notice.sender_org == principal.org_code else notice.sender_org
    auditing.note(request, resource_id=str(notice.id), member_ref=notice.member_card_no, counterpart_org=other)
    return notice


def _location(result: NoticePublic) -> str:
    return f"/api/v1/notices/{result.id}"


async def _create(
    request: Request,
    session: Session,
    principal: Principal,
    key: str | None,
    create: Callable[[], Awaitable[tuple[Notice, list[Document]]]],
) -> JSONResponse:
    """A push or a reply: the new notice with the sender's receipt, once per Idempotency-Key."""

    async def produce() -> NoticeCreated:
        notice, docs = await create()
        return _noted(request, principal, svc.created(notice, docs, principal))

    return await idempotency.created(
        request=request, session=session, principal=principal, key=key, produce=produce, location=_location
    )


@router.post(
    "",
    name="notice.push",
    response_model=NoticeCreated,
    status_code=201,
    summary="Gửi thông báo",
    responses=_WRITE_ERRORS,
    description="Bên gửi là tổ chức của tài khoản; bên nhận là tổ chức của đảng viên ở bên còn lại: nơi cư trú "
    "của đảng viên khi bên nơi làm việc gửi, tổ chức nơi làm việc của đảng viên khi bên nơi cư trú gửi.",
)
async def push_notice(
    request: Request,
    session: SessionDep,
    principal: Worker,
    data: Annotated[NoticeCreate, Body(openapi_examples=_PUSH_EXAMPLES)],
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _create(
        request, session, principal, idempotency_key, lambda: svc.push(session=session, principal=principal, data=data)
    )


async def _page(request: Request, session: Session, page: Page, cursor: str | None) -> NoticesPublic:
    """A page of notices; its cursor is there even on the last page, so a system pulling every minute resumes."""
    auditing.note_list(request, [n.member_card_no for n, _ in page.items])
    return NoticesPublic(
        items=await svc.present(session=session, notices=[n for n, _ in page.items]),
        has_more=page.more,
        next_cursor=encode_cursor(*page.items[-1][1]) if page.items else cursor or None,
    )


Kind = Annotated[NoticeKind | None, Query(description="lọc theo loại thông báo")]
Member = Annotated[str | None, Query(alias="member", pattern=CARD_NO_PATTERN, description="số thẻ đảng viên")]
Status = Annotated[NoticeStatus | None, Query()]
Since = Annotated[Instant | None, Query(description="chỉ thông báo tạo từ thời điểm này (ISO 8601 có múi giờ)")]
Overdue = Annotated[bool | None, Query(description="chỉ các yêu cầu đã quá hạn (true) hoặc chưa quá hạn (false)")]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor của trang trước")]
Limit = Annotated[int, Query(ge=1, le=settings.page_size_max, description=f"tối đa {settings.page_size_max}")]


@dataclass
class Pull:
    """The query of an inbox or outbox pull: filters, cursor and page size."""

    filters: svc.PullFilter
    cursor: str | None
    after: tuple[int, ...] | None
    limit: int


def _pull_cursor(cursor: str | None) -> tuple[int, ...] | None:
    """A cursor is `[position]`; `[tx, seq]`, handed out before positions existed, is still accepted. No cursor, or
    an empty one, means from the start."""
    if not cursor:
        return None
    try:
        after = decode_cursor(cursor, int)
    except BadRequest:
        after = decode_cursor(cursor, int, int)
    if any(v < 0 for v in after):
        raise BadRequest("Con trỏ phân trang (cursor) không hợp lệ.", code="invalid_cursor")
    return after


async def pull_query(
    kind: Kind = None,
    member_card_no: Member = None,
    status: Status = None,
    since: Since = None,
    overdue: Overdue = None,
    cursor: Cursor = None,
    limit: Limit = settings.page_size_default,
) -> Pull:
    filters = svc.PullFilter(
        kind=kind.value if kind else None,
        member_card_no=member_card_no,
        status=status.value if status else None,
        since=since,
        overdue=overdue,
    )
    return Pull(filters=filters, cursor=cursor, after=_pull_cursor(cursor), limit=limit)


PullQuery = Annotated[Pull, Depends(pull_query)]


@router.get(
    "/inbox",
    name="notice.inbox",
    response_model=NoticesPublic,
    summary="Nhận thông báo gửi đến tổ chức (theo con trỏ)",
    description="Thứ tự ổn định; lưu `next_cursor` và lần sau gửi lại để nhận tiếp, không sót, không lặp. "
    "Lần nhận đầu tiên ghi nhận thời điểm chuyển đến.",
)
async def inbox(request: Request, session: SessionDep, principal: Worker, q: PullQuery) -> NoticesPublic:
    page = await fetch_page(
        lambda n: svc.inbox(session=session, principal=principal, after=q.after, filters=q.filters, limit=n), q.limit
    )
    return await _page(request, session, page, q.cursor)


@router.get(
    "/outbox", name="notice.outbox", response_model=NoticesPublic, summary="Thông báo tổ chức đã gửi (theo con trỏ)"
)
async def outbox(request: Request, session: SessionDep, principal: Worker, q: PullQuery) -> NoticesPublic:
    page = await fetch_page(
        lambda n: svc.outbox(session=session, principal=principal, after=q.after, filters=q.filters, limit=n), q.limit
    )
    return await _page(request, session, page, q.cursor)


@router.get(
    "/{notice_id}",
    name="notice.read",
    response_model=NoticeDetail,
    summary="Một thông báo và cả luồng trao đổi",
    responses=_NOT_FOUND,
)
async def get_notice(request: Request, session: SessionDep, principal: Worker, notice_id: uuid.UUID) -> NoticeDetail:
    notice, thread = await svc.get_notice(session=session, principal=principal, notice_id=notice_id)
    shown = await svc.present(session=session, notices=thread)
    this = next(p for p in shown if p.id == notice.id)
    _noted(request, principal, this)
    return NoticeDetail.model_construct(**dict(this), thread=shown)


@router.post(
    "/{notice_id}/ack",
    name="notice.ack",
    response_model=NoticePublic,
    summary="Xác nhận đã nhận (bên nhận; gọi lại được)",
    responses={**_NOT_FOUND, 403: {"description": "Không phải bên nhận"}},
)
async def acknowledge(request: Request, session: SessionDep, principal: Worker, notice_id: uuid.UUID) -> NoticePublic:
    notice = await svc.acknowledge(session=session, principal=principal, notice_id=notice_id)
    return _noted(request, principal, (await svc.present(session=session, notices=[notice]))[0])


@router.post(
    "/{notice_id}/replies",
    name="notice.reply",
    response_model=NoticeCreated,
    status_code=201,
    summary="Trả lời trong cùng luồng (bên nhận)",
    responses=_WRITE_ERRORS,
)
async def reply(
    request: Request,
    session: SessionDep,
    principal: Worker,
    notice_id: uuid.UUID,
    data: Annotated[ReplyCreate, Body(openapi_examples=_REPLY_EXAMPLES)],
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _create(
        request,
        session,
        principal,
        idempotency_key,
        lambda: svc.reply(session=session, principal=principal, notice_id=notice_id, data=data),
    )
