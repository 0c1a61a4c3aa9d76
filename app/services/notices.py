"""Notices: the exchange rules for push, pull, acknowledge and reply."""

import asyncio
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel, ValidationError

from app.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from app.infra.clock import today
from app.infra.db import Session
from app.infra.security import NOTICE_TYP, RECEIPT_TYP, sign_jws
from app.models.base import utcnow
from app.models.document import Document
from app.models.member import Member, ResidenceStatus
from app.models.notice import Notice, NoticeKind, NoticeStatus
from app.models.organization import OrgSide
from app.principal import Principal
from app.repositories import documents as document_rows
from app.repositories import members as member_rows
from app.repositories import notices as rows
from app.repositories.members import MemberScope
from app.repositories.notices import NoticeRow, PullFilter
from app.schemas.document import DocumentRef
from app.schemas.notice import (
    FIELDS_BY_KIND,
    CorrectedFields,
    MemberAcceptedReply,
    MemberNotAcceptedReply,
    NoticeCorrectedNotice,
    NoticeCreate,
    NoticeCreated,
    NoticePublic,
    ReplyCreate,
    ResidenceChangedFields,
    TransferredFields,
    TransferredOriginal,
)
from app.services import policy, webhooks
from app.services.organizations import get_organization
from app.services.sequencer import sequencer
from app.services.signed import content_of, signed_content

K = NoticeKind

# Who may start which kind: the workplace side introduces and asks for comments; the residence side accepts and
# comments.
WORKPLACE_ONLY = {K.member_introduced, K.feedback_requested}
RESIDENCE_ONLY = {K.member_accepted, K.member_not_accepted, K.feedback_given}
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
ANSWER_KINDS = sorted(k.value for k in ANSWERS)  # kinds that stay open until answered (not just acknowledged)

# Dates that must not lie in the future, and dates that must not lie in the past.
_NOT_FUTURE = {"issued_on", "accepted_on", "moved_on", "reviewed_on", "observed_on", "decided_on"}
_NOT_PAST = {"due_date"}


def _not_found() -> NotFound:
    return NotFound("Không tìm thấy thông báo.", code="notice_not_found")


def receipt(n: Notice | NoticeRow, principal: Principal, docs: list[Document]) -> str:
    """The sender's receipt: who supplied which notice, with which content hash, when."""
    body = {
        "receipt_for": "notice",
        "id": str(n.id),
        "supplier_org": n.sender_org,
        "supplied_by": principal.login,
        "sha256": hashlib.sha256(signed_content(content_of(n), docs)).hexdigest(),
        "documents": [{"id": str(d.id), "sha256": d.sha256} for d in docs],
        "received_at": n.created_at.isoformat(),
    }
    return sign_jws(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(), typ=RECEIPT_TYP)


def to_public(n: Notice | NoticeRow, docs: list[Document] = ()) -> NoticePublic:
    """A notice as the API shows it. Built without validating again (`model_construct`: a pull builds fifty): every
    value comes from a stored or just-built notice and already has the schema's type, and the response is still
    written by the schema's serialiser (tests/test_exchange.py checks responses against the schemas)."""
    overdue = n.due_date is not None and n.status != NoticeStatus.answered and n.due_date < today()
    return NoticePublic.model_construct(
        id=n.id, kind=NoticeKind(n.kind), sender_org=n.sender_org, recipient_org=n.recipient_org,
        member_card_no=n.member_card_no, thread_id=n.thread_id, in_reply_to=n.in_reply_to,
        supersedes=n.supersedes, payload=n.payload, due_date=n.due_date, overdue=overdue,
        status=NoticeStatus(n.status), created_at=n.created_at, delivered_at=n.delivered_at,
        acknowledged_at=n.acknowledged_at, answered_at=n.answered_at, signature=n.signature,
        documents=[
            DocumentRef.model_construct(
                id=d.id, file_name=d.file_name, media_type=d.media_type, size=d.size, sha256=d.sha256
            )
            for d in docs
        ],
    )  # fmt: skip


async def present(*, session: Session, notices: list[Notice | NoticeRow]) -> list[NoticePublic]:
    """Notices as the API shows them, with their documents loaded in one query (none when a prepared read already
    knows that no notice here carries any)."""
    carrying = [n.id for n in notices if getattr(n, "has_documents", True)]
    docs = await document_rows.carried(session, carrying)
    return [to_public(n, docs.get(n.id, [])) for n in notices]


def created(n: Notice | NoticeRow, docs: list[Document], principal: Principal) -> NoticeCreated:
    """The response to a push or a reply: the notice and the sender's signed receipt."""
    return NoticeCreated.model_construct(**dict(to_public(n, docs)), receipt=receipt(n, principal, docs))


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
    session: Session,
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
    notice.signature = sign_jws(signed_content(content_of(notice), list(docs)), typ=NOTICE_TYP)
    await rows.insert_notice(session, notice, [d.id for d in docs])
    rows.mark_inserted(session)  # wake the sequencer once this commits
    await webhooks.enqueue(session=session, notice=notice)
    await session.flush()
    return notice


async def insert_service_notice(
    *,
    session: Session,
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


@dataclass(frozen=True)
class Transfer:
    """An open notice whose recipient a registry edition retired, passing to the member's successor."""

    original: NoticeRow
    from_org: str
    to_org: str
    documents: list[Document]


async def insert_transfers(
    *,
    session: Session,
    transfers: list[Transfer],
    edition: str,
    effective: date,
    created_by: uuid.UUID | None,
) -> list[Notice]:
    """One `notice.transferred` per transfer, in the original's thread, from the retired committee to the successor:
    signed (in a worker thread: there may be thousands), numbered by the sequencer and announced to the successor's
    subscriptions like any notice. The original is never changed."""
    now = utcnow()
    built = []
    for t in transfers:
        o = t.original
        copy = TransferredOriginal(
            id=o.id, kind=o.kind, sender_org=o.sender_org, recipient_org=o.recipient_org, created_at=o.created_at,
            payload=o.payload, due_date=o.due_date,
            documents=[{"id": str(d.id), "sha256": d.sha256} for d in t.documents],
        )  # fmt: skip
        payload = TransferredFields(
            edition=edition, effective=effective, from_org=t.from_org, to_org=t.to_org, original=copy
        ).model_dump(mode="json")
        notice_id = uuid.uuid4()
        built.append(
            Notice(
                id=notice_id,
                kind=K.notice_transferred.value,
                sender_org=t.from_org,
                recipient_org=t.to_org,
                member_card_no=o.member_card_no,
                thread_id=o.thread_id,
                in_reply_to=o.id,
                payload=payload,
                due_date=o.due_date,
                created_by=created_by,
                created_at=now,
            )
        )
    signatures = await asyncio.to_thread(
        lambda: [sign_jws(signed_content(content_of(n), []), typ=NOTICE_TYP) for n in built]
    )
    for notice, signature in zip(built, signatures, strict=True):
        notice.signature = signature
    await rows.insert_notices(session, built)
    rows.mark_inserted(session)  # wake the sequencer once this commits
    await webhooks.enqueue_many(session=session, notices=built)
    return built


async def push(*, session: Session, principal: Principal, data: NoticeCreate) -> tuple[Notice, list[Document]]:
    """Push a notice from the caller's committee about a member in both sides' scope."""
    kind = K(data.kind)  # reply-only kinds never get here: the request schema does not offer them
    if kind in WORKPLACE_ONLY:
        policy.require_workplace(
            principal, "Chỉ tổ chức bên nơi làm việc gửi loại thông báo này.", code="direction_not_allowed"
        )
    member = await _member_in_scope(session=session, principal=principal, card_no=data.member_card_no)
    recipient = principal.other_side_of(member)
    ended = member.ended(recipient)
    if ended is not None and ended <= today():  # a member a registry edition could not map
        raise _recipient_retired(recipient, ended)
    if data.recipient_org is not None and data.recipient_org != recipient:
        raise Unprocessable(
            f"Nơi nhận phải là '{recipient}' (bên còn lại của đảng viên này).", code="recipient_mismatch"
        )
    _check_dates(data.payload)
    payload = data.payload.model_dump(mode="json", exclude_none=True)
    if kind == K.member_residence_changed:
        await _check_move(member=member, fields=data.payload, session=session)
    docs = await _own_documents(session=session, principal=principal, ids=data.document_ids)
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


def _member_not_found() -> NotFound:
    return NotFound("Không tìm thấy đảng viên trong phạm vi của tổ chức.", code="member_not_found")


async def _member_in_scope(*, session: Session, principal: Principal, card_no: str) -> MemberScope:
    """The member's card number and committees, if in the caller's scope; otherwise 404."""
    found = await member_rows.scope_of(session, side=principal.org_side, org=principal.org_code, card_no=card_no)
    if found is None:
        raise _member_not_found()
    return found


async def _require_in_area(*, session: Session, principal: Principal, card_no: str) -> None:
    """A committee writes only about members still in its scope, also in threads it took part in before: a residence
    committee no longer about a member who moved away (422 `member_not_in_area`); a workplace committee writes about
    all of its members."""
    if await member_rows.scope_of(session, side=principal.org_side, org=principal.org_code, card_no=card_no) is None:
        raise Unprocessable(
            "Đảng viên không còn cư trú trên địa bàn của tổ chức; không gửi thêm thông tin về đảng viên này.",
            code="member_not_in_area",
        )


async def _own_documents(*, session: Session, principal: Principal, ids: list[uuid.UUID]) -> list[Document]:
    """Documents the caller's committee supplied, to attach to a notice; any other id is a 404."""
    if not ids:
        return []
    unique = list(dict.fromkeys(ids))
    docs = await document_rows.supplied_by(session, org=principal.org_code, ids=unique)
    if len(docs) != len(unique):
        raise NotFound("Chỉ đính kèm được tài liệu do chính tổ chức cung cấp.", code="document_not_found")
    return sorted(docs, key=lambda d: unique.index(d.id))


async def _check_move(*, session: Session, member: MemberScope, fields: ResidenceChangedFields) -> None:
    residence = member.residence_org
    if fields.from_org != residence:
        raise Unprocessable(
            f"from_org phải là nơi cư trú hiện tại của đảng viên ('{residence}').", code="residence_mismatch"
        )
    target = await get_organization(session=session, code=fields.to_org)
    if target.side != OrgSide.residence or not target.is_active(today()):
        raise Unprocessable("to_org phải là một tổ chức bên nơi cư trú đang hoạt động.", code="not_a_district")


async def _correct(
    *,
    session: Session,
    principal: Principal,
    data: NoticeCorrectedNotice,
    member: MemberScope,
    docs: list[Document],
) -> Notice:
    original = await get_visible(session=session, principal=principal, notice_id=data.supersedes)
    if original.sender_org != principal.org_code:
        raise Forbidden("Chỉ bên đã gửi thông báo mới được đính chính.", code="not_sender")
    if original.member_card_no != member.party_card_no:
        raise Unprocessable("Đảng viên của thông báo đính chính phải trùng thông báo gốc.", code="member_mismatch")
    if await rows.is_superseded(session, original.id):
        raise Conflict("Thông báo này đã được đính chính; hãy đính chính bản mới nhất.", code="already_superseded")
    base_kind = (
        K(original.payload.get("original_kind", original.kind))
        if original.kind == K.notice_corrected
        else K(original.kind)
    )
    fields: CorrectedFields = data.payload
    try:
        corrected = FIELDS_BY_KIND[base_kind].model_validate(fields.corrected)
    except ValidationError as exc:
        names = ", ".join(sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})) or "corrected"
        raise Unprocessable(
            f"Nội dung đính chính không đúng cấu trúc của '{base_kind.value}': {names}.", code="invalid_correction"
        ) from None
    _check_dates(corrected)
    payload = {
        "reason": fields.reason,
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
    *, session: Session, principal: Principal, member: Member, from_org: str
) -> list[Notice]:
    """The workplace committee moved a member: the old and the new residence committee each get a residence-change
    notice; only the new one learns the new ward and address (the old one no longer has the member in its area)."""
    left = {"from_org": from_org, "to_org": member.residence_org, "moved_on": member.residence_since.isoformat()}
    arrived = {**left, "new_ward": member.residence_ward, "new_address": member.residence_address}
    moves = [(from_org, left), (member.residence_org, arrived)]
    if not (await get_organization(session=session, code=from_org)).is_active(today()):
        moves = moves[1:]  # a committee a registry edition retired gets nothing new
    return [
        await _insert(
            session=session,
            principal=principal,
            kind=K.member_residence_changed,
            recipient=recipient,
            member_card_no=member.party_card_no,
            payload=payload,
        )
        for recipient, payload in moves
    ]


async def announce_document_correction(
    *, session: Session, principal: Principal, old: Document, new: Document, reason: str
) -> list[Notice]:
    """Every notice that carried the old version gets a notice.corrected carrying the new one, to its recipient,
    unless the member is no longer the recipient's (say, a residence committee the member has moved away from)."""
    sent = []
    for carrier in await rows.carriers(session, document_id=old.id, sender_org=principal.org_code):
        if carrier.member_card_no is not None:
            await _require_in_area(session=session, principal=principal, card_no=carrier.member_card_no)
            member = await member_rows.committees_of(session, carrier.member_card_no)
            if member is None or carrier.recipient_org not in (member.workplace_org, member.residence_org):
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
    *, session: Session, principal: Principal, notice_id: uuid.UUID, for_update: bool = False
) -> NoticeRow:
    """A notice the caller sent or received, or 404: others' notices do not exist for the caller."""
    row = await rows.get_visible(session, org=principal.org_code, notice_id=notice_id, for_update=for_update)
    if row is None:
        raise _not_found()
    return row


async def get_notice(
    *, session: Session, principal: Principal, notice_id: uuid.UUID
) -> tuple[NoticeRow, list[NoticeRow]]:
    """One notice and its thread as the caller may see them; reading it as recipient counts as delivery."""
    thread = await rows.thread(session, org=principal.org_code, notice_id=notice_id)
    notice = next((n for n in thread if n.id == notice_id), None)
    if notice is None:
        raise _not_found()
    await rows.mark_delivered(session, [n for n in thread if n.recipient_org == principal.org_code], utcnow())
    return notice, thread


async def _pull(
    *,
    session: Session,
    principal: Principal,
    box: str,
    filters: PullFilter,
    after: tuple[int, ...] | None,
    limit: int,
) -> list[NoticeRow]:
    await sequencer.catch_up(session)
    position = await _position_after(session, after)
    return await rows.page(
        session, org=principal.org_code, box=box, filters=filters, after=position, limit=limit, today=today()
    )


async def _position_after(session: Session, after: tuple[int, ...] | None) -> int | None:
    """The position a cursor stands at. A cursor is `(position,)`; one handed out before positions existed is
    `(tx, seq)` of the last notice returned, and the migration numbered notices in exactly that order, so that
    notice's position continues it. A cursor naming no notice is refused: pull from the start."""
    if after is None or len(after) == 1:
        return after[0] if after else None
    position = await rows.legacy_position(session, after[1])
    if position is None:
        raise BadRequest(
            "Con trỏ phân trang (cursor) cũ không còn dùng được; hãy kéo lại từ đầu (không gửi cursor).",
            code="cursor_outdated",
        )
    return position


async def inbox(
    *, session: Session, principal: Principal, filters: PullFilter, after: tuple[int, ...] | None, limit: int
) -> list[tuple[NoticeRow, tuple[int]]]:
    """Notices addressed to the caller's committee, in position order, from the cursor on; records first delivery."""
    found = await _pull(session=session, principal=principal, box="inbox", filters=filters, after=after, limit=limit)
    cursors = [(n.position,) for n in found]
    await rows.mark_delivered(session, found, utcnow())
    return list(zip(found, cursors, strict=True))


async def outbox(
    *, session: Session, principal: Principal, filters: PullFilter, after: tuple[int, ...] | None, limit: int
) -> list[tuple[NoticeRow, tuple[int]]]:
    """Notices the caller's committee sent, in position order, from the cursor on."""
    found = await _pull(session=session, principal=principal, box="outbox", filters=filters, after=after, limit=limit)
    return [(n, (n.position,)) for n in found]


async def acknowledge(*, session: Session, principal: Principal, notice_id: uuid.UUID) -> NoticeRow:
    """The recipient confirms receipt; acknowledging again changes nothing. The notice is read without a lock and
    the acknowledgement written only where none is stored yet, so when two arrive at the same moment the first
    stays, and the second's answer shows its own time and account rather than the stored ones."""
    notice = await get_visible(session=session, principal=principal, notice_id=notice_id)
    if notice.recipient_org != principal.org_code:
        raise Forbidden("Chỉ bên nhận mới xác nhận đã nhận thông báo.", code="not_recipient")
    if notice.acknowledged_at is None:
        notice = await rows.acknowledge(session, notice, account_id=principal.account_id, now=utcnow())
        if notice.kind == K.notice_transferred:  # the successor has the original now
            await rows.acknowledge_pending(
                session, notice.in_reply_to, account_id=principal.account_id, now=notice.acknowledged_at
            )
    return notice


async def reply(
    *, session: Session, principal: Principal, notice_id: uuid.UUID, data: ReplyCreate
) -> tuple[Notice, list[Document]]:
    """The recipient answers in the same thread; an answer marks the earlier notice answered."""
    parent = await get_visible(session=session, principal=principal, notice_id=notice_id, for_update=True)
    if parent.recipient_org != principal.org_code:
        raise Forbidden("Chỉ bên nhận mới trả lời thông báo.", code="not_recipient")
    transfer = None
    if parent.kind == K.notice_transferred:  # answering a transfer answers the original it carries
        transfer, parent = parent, await rows.by_id(session, parent.in_reply_to, for_update=True)
    kind, parent_kind = K(data.kind), K(parent.kind)
    if kind not in REPLIES.get(parent_kind, set()):
        allowed = ", ".join(sorted(k.value for k in REPLIES.get(parent_kind, set())))
        raise Unprocessable(
            f"Không thể trả lời '{parent_kind.value}' bằng '{kind.value}'. Được phép: {allowed}.",
            code="reply_kind_mismatch",
        )
    if kind in RESIDENCE_ONLY:
        policy.require_residence(
            principal, "Chỉ tổ chức bên nơi cư trú gửi loại thông báo này.", code="direction_not_allowed"
        )
    if parent.member_card_no is not None:
        await _require_in_area(session=session, principal=principal, card_no=parent.member_card_no)
    _check_dates(data.payload)
    is_answer = kind in ANSWERS.get(parent_kind, set())
    if is_answer and parent.answered_at is not None:
        raise Conflict("Thông báo này đã được trả lời.", code="already_answered")
    if kind == K.feedback_given and data.payload.year != parent.payload.get("year"):
        raise Unprocessable("Năm nhận xét phải trùng năm của phiếu xin ý kiến.", code="year_mismatch")
    docs = await _own_documents(session=session, principal=principal, ids=data.document_ids)
    if kind in (K.member_accepted, K.member_not_accepted):
        await _record_acceptance(session=session, principal=principal, card_no=parent.member_card_no, data=data)
    answer = await _insert(
        session=session,
        principal=principal,
        kind=kind,
        recipient=await _current_party(session=session, org_code=parent.sender_org, card_no=parent.member_card_no),
        member_card_no=parent.member_card_no,
        payload=data.payload.model_dump(mode="json", exclude_none=True),
        thread_id=parent.thread_id,
        in_reply_to=parent.id,
        due_date=getattr(data.payload, "due_date", None),
        docs=docs,
    )
    if is_answer:
        await rows.mark_answered(session, parent.id, utcnow())
        if transfer is not None:
            await rows.mark_answered(session, transfer.id, utcnow())
    return answer, docs


async def _current_party(*, session: Session, org_code: str, card_no: str) -> str:
    """Where a reply to `org_code` goes: that committee, or once a registry edition retired it, the member's
    committee on the same side now (its successor). Nothing goes to a retired committee: a member the edition could
    not map is still registered there, and the reply waits until the member's new committee is recorded (422
    `recipient_retired`, as for a push)."""
    org = await get_organization(session=session, code=org_code)
    if org.is_active(today()) or org.side is None:
        return org_code
    current = await member_rows.committees_of(session, card_no)
    successor = None
    if current is not None:
        successor = current.workplace_org if org.side == OrgSide.workplace else current.residence_org
    if successor is None or successor == org_code:
        raise _recipient_retired(org_code, org.valid_to)
    return successor


def _recipient_retired(org_code: str, ended: date) -> Unprocessable:
    return Unprocessable(
        f"Tổ chức '{org_code}' của đảng viên này đã giải thể từ {ended.isoformat()} (sắp xếp lại tổ chức); "
        "cần cập nhật tổ chức mới của đảng viên trước khi gửi.",
        code="recipient_retired",
    )


async def _record_acceptance(
    *, session: Session, principal: Principal, card_no: str, data: MemberAcceptedReply | MemberNotAcceptedReply
) -> None:
    """The residence committee's answer to an introduction or a move becomes the member's residence status."""
    member = await member_rows.get_visible(
        session, side=principal.org_side, org=principal.org_code, card_no=card_no, for_update=True
    )
    if member is None:
        raise Unprocessable(
            "Chỉ tổ chức nơi đảng viên đang cư trú mới tiếp nhận hoặc từ chối.", code="not_member_district"
        )
    if isinstance(data, MemberAcceptedReply):
        member.residence_status = ResidenceStatus.accepted.value
        member.residence_cell = data.payload.cell
        member.status_reason = None
    else:
        member.residence_status = ResidenceStatus.not_accepted.value
        member.status_reason = data.payload.reason
    member.version += 1
    member.updated_at = utcnow()
    await session.flush()
