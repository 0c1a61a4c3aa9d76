"""Notices: the exchange rules for push, pull, acknowledge and reply."""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import ARRAY, BigInteger, Uuid, any_, bindparam, case, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from app.infra.clock import today
from app.infra.security import NOTICE_TYP, RECEIPT_TYP, sign_jws
from app.models.base import UTCDateTime, utcnow
from app.models.document import Document, NoticeDocument
from app.models.member import Member, ResidenceStatus
from app.models.notice import Notice, NoticeKind, NoticeStatus
from app.principal import Principal
from app.repositories.prepared import Prepared, prepared
from app.schemas.document import DocumentRef
from app.schemas.notice import FIELDS_BY_KIND, NoticeCreated, NoticePublic
from app.services import documents, members, webhooks
from app.services.organizations import KHOI_CODE, get_organization
from app.services.scoping import notices_visible_to
from app.services.sequencer import PENDING, sequencer

K = NoticeKind

# Who may start which kind: the Khối introduces and asks for comments; districts accept and comment.
KHOI_ONLY = {K.member_introduced, K.feedback_requested}
DISTRICT_ONLY = {K.member_accepted, K.member_not_accepted, K.feedback_given}
# Kinds that only ever answer an earlier notice (sent with POST /notices/{id}/replies).
REPLY_ONLY = {K.member_accepted, K.member_not_accepted, K.feedback_given, K.info_provided}

# For each kind, the kinds a recipient may reply with; ANSWERS mark the earlier notice answered.
REPLIES: dict[NoticeKind, set[NoticeKind]] = {
    K.member_introduced: {K.member_accepted, K.member_not_accepted, K.info_requested},
    K.member_residence_changed: {K.member_accepted, K.member_not_accepted, K.info_requested},
    K.feedback_requested: {K.feedback_given, K.info_requested},
    K.info_requested: {K.info_provided},
    K.violation_reported: {K.info_provided, K.info_requested},
    K.discipline_decided: {K.info_requested},
    K.member_accepted: {K.info_requested},
    K.member_not_accepted: {K.info_requested},
    K.feedback_given: {K.info_requested},
    K.feedback_reminder: {K.info_requested},
    K.info_provided: {K.info_requested},
    K.notice_corrected: {K.info_requested},
}
ANSWERS: dict[NoticeKind, set[NoticeKind]] = {
    K.member_introduced: {K.member_accepted, K.member_not_accepted},
    K.member_residence_changed: {K.member_accepted, K.member_not_accepted},
    K.feedback_requested: {K.feedback_given},
    K.info_requested: {K.info_provided},
}

# Dates that must not lie in the future, and dates that must not lie in the past.
_NOT_FUTURE = {"issued_on", "accepted_on", "moved_on", "reviewed_on", "observed_on", "decided_on"}
_NOT_PAST = {"due_date"}


# Prepared statements of the hot paths (app/repositories/prepared.py). A notice is inserted without a position: the
# sequencer gives it one once it has committed (app/services/sequencer.py); pulls return only positioned notices.
_COLUMNS = [c.name for c in Notice.__table__.columns]
_INSERT_NOTICE = Prepared(insert(Notice.__table__), column_keys=[c for c in _COLUMNS if c not in ("seq", "position")])
_LEGACY_POSITION = Prepared(select(Notice.position).where(Notice.seq == bindparam("seq", type_=BigInteger)))
_HAS_DOCUMENTS = exists().where(NoticeDocument.notice_id == Notice.id).label("has_documents")
_ROW = (*Notice.__table__.columns, _HAS_DOCUMENTS)
_MARK_DELIVERED_VALUES = {
    "delivered_at": bindparam("now"),
    "status": case((Notice.status == NoticeStatus.sent.value, NoticeStatus.delivered.value), else_=Notice.status),
}
_MARK_DELIVERED = Prepared(
    update(Notice.__table__)
    .where(Notice.id.in_(bindparam("ids", expanding=True)), Notice.delivered_at.is_(None))
    .values(_MARK_DELIVERED_VALUES)
    .returning(Notice.id, Notice.delivered_at, Notice.status),
    postgresql=update(Notice.__table__)
    .where(Notice.id == any_(bindparam("ids", type_=ARRAY(Uuid))), Notice.delivered_at.is_(None))
    .values(_MARK_DELIVERED_VALUES)
    .returning(Notice.id, Notice.delivered_at, Notice.status),
)
_ACKNOWLEDGE = Prepared(
    update(Notice.__table__)
    .where(Notice.id == bindparam("notice_id"))
    .values(
        acknowledged_at=bindparam("now"),
        acknowledged_by=bindparam("account_id"),
        delivered_at=func.coalesce(Notice.delivered_at, bindparam("now")),
        status=case(
            (Notice.status == NoticeStatus.answered.value, Notice.status), else_=NoticeStatus.acknowledged.value
        ),
    )
    .returning(*Notice.__table__.columns)
)
_ANSWERED = Prepared(
    update(Notice.__table__)
    .where(Notice.id == bindparam("notice_id"))
    .values(
        answered_at=bindparam("now"),
        delivered_at=func.coalesce(Notice.delivered_at, bindparam("now")),
        status=NoticeStatus.answered.value,
    )
)


def _rows(rows) -> list[SimpleNamespace]:
    """Notices read by a prepared statement, with attribute access like the model's."""
    return [SimpleNamespace(**row) for row in rows]


def _not_found() -> NotFound:
    return NotFound("Không tìm thấy thông báo.", code="notice_not_found")


def content_of(n: Notice) -> dict[str, Any]:
    """The signed fields of a notice: its content, never its delivery status."""
    return {
        "id": str(n.id), "kind": n.kind, "sender_org": n.sender_org, "recipient_org": n.recipient_org,
        "member_card_no": n.member_card_no, "thread_id": str(n.thread_id),
        "in_reply_to": str(n.in_reply_to) if n.in_reply_to else None,
        "supersedes": str(n.supersedes) if n.supersedes else None, "payload": n.payload,
        "due_date": n.due_date.isoformat() if n.due_date else None, "created_at": n.created_at.isoformat(),
    }  # fmt: skip


def canonical(content: dict[str, Any], docs: list[Document]) -> bytes:
    """The canonical JSON the service signs: the content and each document's id and SHA-256."""
    content = {**content, "documents": [{"id": str(d.id), "sha256": d.sha256} for d in docs]}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_content(n: Notice, docs: list[Document]) -> bytes:
    return canonical(content_of(n), docs)


def receipt(n: Notice, principal: Principal, docs: list[Document]) -> str:
    """The sender's receipt: who supplied which notice, with which content hash, when."""
    body = {
        "receipt_for": "notice",
        "id": str(n.id),
        "supplier_org": n.sender_org,
        "supplied_by": principal.login,
        "sha256": hashlib.sha256(canonical_content(n, docs)).hexdigest(),
        "documents": [{"id": str(d.id), "sha256": d.sha256} for d in docs],
        "received_at": n.created_at.isoformat(),
    }
    return sign_jws(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(), typ=RECEIPT_TYP)


def to_public(n: Notice, docs: list[Document] = ()) -> NoticePublic:
    overdue = n.due_date is not None and n.status != NoticeStatus.answered and n.due_date < today()
    return NoticePublic(
        id=n.id, kind=n.kind, sender_org=n.sender_org, recipient_org=n.recipient_org,
        member_card_no=n.member_card_no, thread_id=n.thread_id, in_reply_to=n.in_reply_to,
        supersedes=n.supersedes, payload=n.payload, due_date=n.due_date, overdue=overdue, status=n.status,
        created_at=n.created_at, delivered_at=n.delivered_at, acknowledged_at=n.acknowledged_at,
        answered_at=n.answered_at, signature=n.signature,
        documents=[DocumentRef(id=d.id, file_name=d.file_name, media_type=d.media_type, size=d.size, sha256=d.sha256)
                   for d in docs],
    )  # fmt: skip


async def present(*, session: AsyncSession, notices: list[Notice]) -> list[NoticePublic]:
    """Notices as the API shows them, with their documents loaded in one query (none when a prepared read already
    knows that no notice here carries any)."""
    carrying = [n.id for n in notices if getattr(n, "has_documents", True)]
    docs = await documents.carried_documents(session=session, notice_ids=carrying)
    return [to_public(n, docs.get(n.id, [])) for n in notices]


def created(n: Notice, docs: list[Document], principal: Principal) -> NoticeCreated:
    """The response to a push or a reply: the notice and the sender's signed receipt."""
    return NoticeCreated(**to_public(n, docs).model_dump(), receipt=receipt(n, principal, docs))


def _check_dates(payload: BaseModel) -> None:
    for name, value in payload:
        if not isinstance(value, date):
            continue
        if name in _NOT_FUTURE and value > today():
            raise Unprocessable(f"Ngày '{name}' không được ở tương lai.", code="date_in_future")
        if name in _NOT_PAST and value < today():
            raise Unprocessable(f"Hạn '{name}' đã qua.", code="due_date_in_past")


async def _insert(
    *,
    session: AsyncSession,
    principal: Principal,
    kind: NoticeKind,
    recipient: str,
    member_card_no: str,
    payload: dict[str, Any],
    thread_id: uuid.UUID | None = None,
    in_reply_to: uuid.UUID | None = None,
    supersedes: uuid.UUID | None = None,
    due_date: date | None = None,
    docs: list[Document] = (),
) -> Notice:
    notice_id = uuid.uuid4()
    notice = Notice(
        id=notice_id, kind=kind.value, sender_org=principal.org_code, recipient_org=recipient,
        member_card_no=member_card_no, thread_id=thread_id or notice_id, in_reply_to=in_reply_to,
        supersedes=supersedes, payload=payload, due_date=due_date, created_by=principal.account_id,
        created_at=utcnow(),
    )  # fmt: skip
    # Signed once, here, so that pulls stay cheap.
    notice.signature = sign_jws(canonical_content(notice, list(docs)), typ=NOTICE_TYP)
    await _INSERT_NOTICE.execute(session, notice.model_dump(exclude={"seq", "position"}))
    session.info[PENDING] = True  # wake the sequencer once this commits
    if docs:
        session.add_all([NoticeDocument(notice_id=notice.id, document_id=d.id) for d in docs])
    await webhooks.enqueue(session=session, notice=notice)
    await session.flush()
    return notice


async def insert_service_notice(
    *,
    session: AsyncSession,
    sender: Principal,
    kind: NoticeKind,
    recipient: str,
    member_card_no: str,
    payload: dict[str, Any],
    thread_id: uuid.UUID,
) -> Notice:
    """A notice the service sends on its own (reminders): signed and announced like any other."""
    return await _insert(
        session=session,
        principal=sender,
        kind=kind,
        recipient=recipient,
        member_card_no=member_card_no,
        payload=payload,
        thread_id=thread_id,
    )


async def push(*, session: AsyncSession, principal: Principal, data: Any) -> tuple[Notice, list[Document]]:
    """Push a notice from the caller's committee about a member in both sides' scope."""
    kind = K(data.kind)
    if kind in REPLY_ONLY:
        raise Unprocessable(
            "Loại thông báo này là trả lời: gửi qua POST /api/v1/notices/{id}/replies.", code="reply_required"
        )
    if kind in KHOI_ONLY and not principal.is_khoi:
        raise Forbidden("Chỉ Đảng ủy Khối gửi loại thông báo này.", code="direction_not_allowed")
    member = await members.member_scope(session=session, principal=principal, card_no=data.member_card_no)
    recipient = member.residence_org if principal.is_khoi else KHOI_CODE
    if data.recipient_org is not None and data.recipient_org != recipient:
        raise Unprocessable(
            f"Nơi nhận phải là '{recipient}' (bên còn lại của đảng viên này).", code="recipient_mismatch"
        )
    _check_dates(data.payload)
    payload = data.payload.model_dump(mode="json", exclude_none=True)
    if kind == K.member_residence_changed:
        await _check_move(session=session, principal=principal, member=member, fields=data.payload)
    docs = await documents.own_documents(session=session, principal=principal, ids=data.document_ids)
    if kind == K.notice_corrected:
        return await _correct(session=session, principal=principal, data=data, member=member, docs=docs), docs
    notice = await _insert(
        session=session,
        principal=principal,
        kind=kind,
        recipient=recipient,
        member_card_no=member.party_card_no,
        payload=payload,
        due_date=getattr(data.payload, "due_date", None),
        docs=docs,
    )
    return notice, docs


async def _check_move(*, session: AsyncSession, principal: Principal, member: members.MemberScope, fields: Any) -> None:
    district = member.residence_org
    if fields.from_org != district:
        raise Unprocessable(
            f"from_org phải là nơi cư trú hiện tại của đảng viên ('{district}').", code="residence_mismatch"
        )
    target = await get_organization(session=session, code=fields.to_org)
    if target.kind != "district":
        raise Unprocessable("to_org phải là một quận/huyện/thị ủy.", code="not_a_district")


async def _correct(
    *, session: AsyncSession, principal: Principal, data: Any, member: members.MemberScope, docs: list[Document]
) -> Notice:
    original = await get_visible(session=session, principal=principal, notice_id=data.supersedes)
    if original.sender_org != principal.org_code:
        raise Forbidden("Chỉ bên đã gửi thông báo mới được đính chính.", code="not_sender")
    if original.member_card_no != member.party_card_no:
        raise Unprocessable("Đảng viên của thông báo đính chính phải trùng thông báo gốc.", code="member_mismatch")
    superseded = await session.scalar(select(exists().where(Notice.supersedes == original.id)))
    if superseded:
        raise Conflict("Thông báo này đã được đính chính; hãy đính chính bản mới nhất.", code="already_superseded")
    base_kind = (
        K(original.payload.get("original_kind", original.kind))
        if original.kind == K.notice_corrected
        else K(original.kind)
    )
    try:
        corrected = FIELDS_BY_KIND[base_kind].model_validate(data.payload.corrected)
    except ValidationError as exc:
        fields = ", ".join(sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})) or "corrected"
        raise Unprocessable(
            f"Nội dung đính chính không đúng cấu trúc của '{base_kind.value}': {fields}.", code="invalid_correction"
        ) from None
    _check_dates(corrected)
    payload = {
        "reason": data.payload.reason,
        "original_kind": base_kind.value,
        "corrected": corrected.model_dump(mode="json", exclude_none=True),
    }
    return await _insert(
        session=session,
        principal=principal,
        kind=K.notice_corrected,
        recipient=original.recipient_org,
        member_card_no=original.member_card_no,
        payload=payload,
        thread_id=original.thread_id,
        supersedes=original.id,
        docs=docs,
    )


async def notify_residence_change(
    *, session: AsyncSession, principal: Principal, member: Member, from_org: str
) -> list[Notice]:
    """The Khối moved a member: the old and the new district each get a residence-change notice; only the new
    one learns the new ward and address (the old district no longer has the member in its area)."""
    left = {"from_org": from_org, "to_org": member.residence_org, "moved_on": member.residence_since.isoformat()}
    arrived = {**left, "new_ward": member.residence_ward, "new_address": member.residence_address}
    return [
        await _insert(
            session=session,
            principal=principal,
            kind=K.member_residence_changed,
            recipient=district,
            member_card_no=member.party_card_no,
            payload=payload,
        )
        for district, payload in ((from_org, left), (member.residence_org, arrived))
    ]


async def announce_document_correction(
    *, session: AsyncSession, principal: Principal, old: Document, new: Document, reason: str
) -> list[Notice]:
    """Every notice that carried the old version gets a notice.corrected carrying the new one, to its recipient,
    unless the recipient is a district the member has since moved away from."""
    carriers = (
        await session.execute(
            select(Notice)
            .join(NoticeDocument, NoticeDocument.notice_id == Notice.id)
            .where(NoticeDocument.document_id == old.id, Notice.sender_org == principal.org_code)
            .order_by(Notice.seq)
        )
    ).scalars()
    sent = []
    for carrier in carriers:
        if carrier.member_card_no is not None:
            await members.require_in_area(session=session, principal=principal, card_no=carrier.member_card_no)
            card_no, recipient = carrier.member_card_no, carrier.recipient_org
            if not await members.lives_in(session=session, org_code=recipient, card_no=card_no):
                continue
        payload = {
            "reason": reason,
            "original_kind": carrier.kind,
            "document": {"supersedes": str(old.id), "document_id": str(new.id), "sha256": new.sha256},
        }
        sent.append(
            await _insert(
                session=session,
                principal=principal,
                kind=K.notice_corrected,
                recipient=carrier.recipient_org,
                member_card_no=carrier.member_card_no,
                payload=payload,
                thread_id=carrier.thread_id,
                docs=[new],
            )
        )
    return sent


async def get_visible(
    *, session: AsyncSession, principal: Principal, notice_id: uuid.UUID, for_update: bool = False
) -> SimpleNamespace:
    """A notice the caller sent or received, or 404: others' notices do not exist for the caller."""

    def build() -> Prepared:
        stmt = select(*_ROW).where(
            Notice.id == bindparam("notice_id"), notices_visible_to(principal, org=bindparam("org"))
        )
        return Prepared(stmt.with_for_update(of=Notice.__table__) if for_update else stmt)

    stmt = prepared(("notice_visible", for_update), build)
    row = await stmt.fetchrow(session, {"notice_id": notice_id, "org": principal.org_code})
    if row is None:
        raise _not_found()
    return SimpleNamespace(**row)


async def _mark_delivered(session: AsyncSession, notices: list[SimpleNamespace]) -> None:
    """The recipient has now seen these: record the first delivery, in one statement."""
    pending = [n for n in notices if n.delivered_at is None]
    if not pending:
        return
    marked = await _MARK_DELIVERED.fetch(session, {"ids": [n.id for n in pending], "now": utcnow()})
    changed = {row["id"]: row for row in marked}
    for n in pending:
        if n.id in changed:
            n.delivered_at, n.status = changed[n.id]["delivered_at"], changed[n.id]["status"]


async def get_notice(
    *, session: AsyncSession, principal: Principal, notice_id: uuid.UUID
) -> tuple[SimpleNamespace, list[SimpleNamespace]]:
    """One notice and its thread as the caller may see them; reading it as recipient counts as delivery."""
    stmt = prepared(
        "notice_thread",
        lambda: Prepared(
            select(*_ROW)
            .where(
                Notice.thread_id
                == select(Notice.thread_id)
                .where(Notice.id == bindparam("notice_id"), notices_visible_to(principal, org=bindparam("org")))
                .scalar_subquery(),
                notices_visible_to(principal, org=bindparam("org")),
            )
            .order_by(Notice.seq)
        ),
    )
    thread = _rows(await stmt.fetch(session, {"notice_id": notice_id, "org": principal.org_code}))
    notice = next((n for n in thread if n.id == notice_id), None)
    if notice is None:
        raise _not_found()
    await _mark_delivered(session, [n for n in thread if n.recipient_org == principal.org_code])
    return notice, thread


@dataclass
class PullFilter:
    kind: str | None = None
    member_card_no: str | None = None
    status: str | None = None
    since: datetime | None = None
    overdue: bool | None = None


def _pull_statement(principal: Principal, box: str, filters: PullFilter, after: bool) -> Prepared:
    """The page query of one shape (box, which filters, whether a cursor is given): built once per shape."""

    def build() -> Prepared:
        own = Notice.recipient_org if box == "inbox" else Notice.sender_org
        stmt = (
            select(*_ROW)
            .where(own == bindparam("org"), notices_visible_to(principal, org=bindparam("org")))
            .order_by(Notice.position)
            .limit(bindparam("limit"))
        )
        # Only positioned notices: a notice without a position yet may still get one below nothing handed out so
        # far, but never below a position already visible (see app/services/sequencer.py).
        if after:
            stmt = stmt.where(Notice.position > bindparam("after", type_=BigInteger))
        else:
            stmt = stmt.where(Notice.position.is_not(None))
        if filters.kind:
            stmt = stmt.where(Notice.kind == bindparam("kind"))
        if filters.member_card_no:
            stmt = stmt.where(Notice.member_card_no == bindparam("member_card_no"))
        if filters.status:
            stmt = stmt.where(Notice.status == bindparam("status"))
        if filters.since:
            stmt = stmt.where(Notice.created_at >= bindparam("since", type_=UTCDateTime))
        if filters.overdue is not None:
            late = (Notice.due_date < bindparam("today")) & (Notice.status != NoticeStatus.answered.value)
            stmt = stmt.where(late if filters.overdue else ~late | Notice.due_date.is_(None))
        return Prepared(stmt)

    shape = (box, bool(filters.kind), bool(filters.member_card_no), bool(filters.status), bool(filters.since))
    return prepared(("pull", *shape, filters.overdue, after), build)


async def _pull(
    *,
    session: AsyncSession,
    principal: Principal,
    box: str,
    filters: PullFilter,
    after: tuple[int, ...] | None,
    limit: int,
) -> list[SimpleNamespace]:
    await sequencer.catch_up(session)
    position = await _position_after(session, after)
    stmt = _pull_statement(principal, box, filters, position is not None)
    params = {
        "org": principal.org_code,
        "limit": limit,
        "after": position,
        "kind": filters.kind,
        "member_card_no": filters.member_card_no,
        "status": filters.status,
        "since": filters.since,
        "today": today(),
    }
    return _rows(await stmt.fetch(session, params))


async def _position_after(session: AsyncSession, after: tuple[int, ...] | None) -> int | None:
    """The position a cursor stands at. A cursor is `(position,)`; one handed out before positions existed is
    `(tx, seq)` of the last notice returned, and the migration numbered notices in exactly that order, so that
    notice's position continues it. A cursor naming no notice is refused: pull from the start."""
    if after is None or len(after) == 1:
        return after[0] if after else None
    row = await _LEGACY_POSITION.fetchrow(session, {"seq": after[1]})
    if row is None or row["position"] is None:
        raise BadRequest(
            "Con trỏ phân trang (cursor) cũ không còn dùng được; hãy kéo lại từ đầu (không gửi cursor).",
            code="cursor_outdated",
        )
    return row["position"]


async def inbox(
    *, session: AsyncSession, principal: Principal, filters: PullFilter, after: tuple[int, ...] | None, limit: int
) -> list[tuple[Notice, tuple[int]]]:
    """Notices addressed to the caller's committee, in position order, from the cursor on; records first delivery."""
    rows = await _pull(session=session, principal=principal, box="inbox", filters=filters, after=after, limit=limit)
    cursors = [(n.position,) for n in rows]
    await _mark_delivered(session, rows)
    return list(zip(rows, cursors, strict=True))


async def outbox(
    *, session: AsyncSession, principal: Principal, filters: PullFilter, after: tuple[int, ...] | None, limit: int
) -> list[tuple[Notice, tuple[int]]]:
    """Notices the caller's committee sent, in position order, from the cursor on."""
    rows = await _pull(session=session, principal=principal, box="outbox", filters=filters, after=after, limit=limit)
    return [(n, (n.position,)) for n in rows]


async def acknowledge(*, session: AsyncSession, principal: Principal, notice_id: uuid.UUID) -> SimpleNamespace:
    """The recipient confirms receipt; acknowledging again changes nothing."""
    notice = await get_visible(session=session, principal=principal, notice_id=notice_id, for_update=True)
    if notice.recipient_org != principal.org_code:
        raise Forbidden("Chỉ bên nhận mới xác nhận đã nhận thông báo.", code="not_recipient")
    if notice.acknowledged_at is None:
        params = {"notice_id": notice.id, "now": utcnow(), "account_id": principal.account_id}
        notice = SimpleNamespace(**await _ACKNOWLEDGE.fetchrow(session, params), has_documents=notice.has_documents)
    return notice


async def reply(
    *, session: AsyncSession, principal: Principal, notice_id: uuid.UUID, data: Any
) -> tuple[Notice, list[Document]]:
    """The recipient answers in the same thread; an answer marks the earlier notice answered."""
    parent = await get_visible(session=session, principal=principal, notice_id=notice_id, for_update=True)
    if parent.recipient_org != principal.org_code:
        raise Forbidden("Chỉ bên nhận mới trả lời thông báo.", code="not_recipient")
    kind, parent_kind = K(data.kind), K(parent.kind)
    if kind not in REPLIES.get(parent_kind, set()):
        allowed = ", ".join(sorted(k.value for k in REPLIES.get(parent_kind, set())))
        raise Unprocessable(
            f"Không thể trả lời '{parent_kind.value}' bằng '{kind.value}'. Được phép: {allowed}.",
            code="reply_kind_mismatch",
        )
    if kind in DISTRICT_ONLY and principal.is_khoi:
        raise Forbidden("Chỉ quận/huyện/thị ủy gửi loại thông báo này.", code="direction_not_allowed")
    if parent.member_card_no is not None:
        await members.require_in_area(session=session, principal=principal, card_no=parent.member_card_no)
    _check_dates(data.payload)
    is_answer = kind in ANSWERS.get(parent_kind, set())
    if is_answer and parent.answered_at is not None:
        raise Conflict("Thông báo này đã được trả lời.", code="already_answered")
    if kind == K.feedback_given and data.payload.year != parent.payload.get("year"):
        raise Unprocessable("Năm nhận xét phải trùng năm của phiếu xin ý kiến.", code="year_mismatch")
    docs = await documents.own_documents(session=session, principal=principal, ids=data.document_ids)
    if kind in (K.member_accepted, K.member_not_accepted):
        await _record_acceptance(
            session=session, principal=principal, card_no=parent.member_card_no, kind=kind, fields=data.payload
        )
    answer = await _insert(
        session=session,
        principal=principal,
        kind=kind,
        recipient=parent.sender_org,
        member_card_no=parent.member_card_no,
        payload=data.payload.model_dump(mode="json", exclude_none=True),
        thread_id=parent.thread_id,
        in_reply_to=parent.id,
        due_date=getattr(data.payload, "due_date", None),
        docs=docs,
    )
    if is_answer:
        await _ANSWERED.execute(session, {"notice_id": parent.id, "now": utcnow()})
    return answer, docs


async def _record_acceptance(
    *, session: AsyncSession, principal: Principal, card_no: str, kind: NoticeKind, fields: Any
) -> None:
    """The district's answer to an introduction or a move becomes the member's residence status."""
    try:
        member = await members.get_member(session=session, principal=principal, card_no=card_no, for_update=True)
    except NotFound:
        raise Unprocessable(
            "Chỉ quận/huyện/thị ủy nơi đảng viên đang cư trú mới tiếp nhận hoặc từ chối.", code="not_member_district"
        ) from None
    if kind == K.member_accepted:
        member.residence_status = ResidenceStatus.accepted.value
        member.residence_cell = fields.cell
        member.status_reason = None
    else:
        member.residence_status = ResidenceStatus.not_accepted.value
        member.status_reason = fields.reason
    member.version += 1
    member.updated_at = utcnow()
    await session.flush()
