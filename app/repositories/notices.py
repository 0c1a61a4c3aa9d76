"""Notices in the database: the scope rule (who may see a notice) and every statement of the exchange.

The hot paths (push, pull, acknowledge, read) run prepared statements (app/repositories/prepared.py). A notice is
inserted without a position: the sequencer gives it one once it has committed (app/services/sequencer.py); pulls
return only positioned notices.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Uuid,
    and_,
    any_,
    bindparam,
    case,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.models.base import UTCDateTime
from app.models.document import NoticeDocument
from app.models.member import Member
from app.models.notice import Notice, NoticeKind, NoticeStatus
from app.models.registry import NoticeTransfer, OrganizationSuccession
from app.repositories.prepared import Prepared, later, shaped


def participant(org: Any) -> ColumnElement[bool]:
    """The notices a committee took part in: it sent or received them (inbox, outbox and reports)."""
    return or_(Notice.sender_org == org, Notice.recipient_org == org)


def readable(org: Any) -> ColumnElement[bool]:
    """The scope rule for notices, and the only one: a notice is seen by its sender and its recipient committee;
    by a successor of either (app.models.registry) while the member is in the successor's scope (the history of
    its members stays readable after a re-organisation); and a transfer also by the sender of the notice it
    carries. `org` is the caller's committee code (a bind parameter in prepared statements). The two later checks
    run only for a notice the caller did not take part in: one index lookup each."""
    inherited = (
        select(OrganizationSuccession.predecessor)
        .join(Member, Member.party_card_no == Notice.member_card_no)
        .where(
            OrganizationSuccession.successor == org,
            OrganizationSuccession.predecessor.in_([Notice.sender_org, Notice.recipient_org]),
            or_(Member.residence_org == org, Member.workplace_org == org),
        )
        .exists()
    )
    carried_for = (
        select(NoticeTransfer.transfer_id)
        .where(NoticeTransfer.transfer_id == Notice.id, NoticeTransfer.original_sender == org)
        .exists()
    )
    return or_(participant(org), inherited, and_(Notice.kind == NoticeKind.notice_transferred.value, carried_for))


@dataclass(slots=True)
class NoticeRow:
    """A notice as the hot paths read it: its columns, and whether it carries documents."""

    seq: int | None
    id: uuid.UUID
    position: int | None
    kind: str
    sender_org: str
    recipient_org: str
    member_card_no: str
    thread_id: uuid.UUID
    in_reply_to: uuid.UUID | None
    supersedes: uuid.UUID | None
    payload: dict[str, Any]
    due_date: date | None
    status: str
    created_by: uuid.UUID | None
    created_at: datetime
    delivered_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: uuid.UUID | None
    answered_at: datetime | None
    signature: str | None
    has_documents: bool = True


@dataclass
class PullFilter:
    kind: str | None = None
    member_card_no: str | None = None
    status: str | None = None
    since: datetime | None = None
    overdue: bool | None = None


_COLUMNS = [c.name for c in Notice.__table__.columns]
_INSERT = Prepared(insert(Notice.__table__), column_keys=[c for c in _COLUMNS if c not in ("seq", "position")])
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
    .values(_MARK_DELIVERED_VALUES),
    postgresql=update(Notice.__table__)
    .where(Notice.id == any_(bindparam("ids", type_=ARRAY(Uuid))), Notice.delivered_at.is_(None))
    .values(_MARK_DELIVERED_VALUES),
)
_ACKNOWLEDGE = Prepared(
    update(Notice.__table__)
    .where(Notice.id == bindparam("notice_id"), Notice.acknowledged_at.is_(None))
    .values(
        acknowledged_at=bindparam("now"),
        acknowledged_by=bindparam("account_id"),
        delivered_at=func.coalesce(Notice.delivered_at, bindparam("now")),
        status=case(
            (Notice.status == NoticeStatus.answered.value, Notice.status), else_=NoticeStatus.acknowledged.value
        ),
    )
)
_INSERT_DOCUMENT = Prepared(insert(NoticeDocument.__table__), column_keys=["notice_id", "document_id"])
_ANSWERED = Prepared(
    update(Notice.__table__)
    .where(Notice.id == bindparam("notice_id"))
    .values(
        answered_at=bindparam("now"),
        delivered_at=func.coalesce(Notice.delivered_at, bindparam("now")),
        status=NoticeStatus.answered.value,
    )
)


def _rows(rows) -> list[NoticeRow]:
    return [NoticeRow(**row) for row in rows]


@shaped
def _visible(for_update: bool) -> Prepared:
    stmt = select(*_ROW).where(Notice.id == bindparam("notice_id"), readable(bindparam("org")))
    return Prepared(stmt.with_for_update(of=Notice.__table__) if for_update else stmt)


@shaped
def _thread() -> Prepared:
    thread_of = select(Notice.thread_id).where(Notice.id == bindparam("notice_id"), readable(bindparam("org")))
    return Prepared(
        select(*_ROW)
        .where(Notice.thread_id == thread_of.scalar_subquery(), readable(bindparam("org")))
        .order_by(Notice.seq)
    )


@shaped
def _page(box: str, kind: bool, member: bool, status: bool, since: bool, overdue: bool | None, after: bool) -> Prepared:
    """The page query of one shape (box, which filters, whether a cursor is given)."""
    own = Notice.recipient_org if box == "inbox" else Notice.sender_org
    stmt = (
        select(*_ROW)
        .where(own == bindparam("org"), participant(bindparam("org")))
        .order_by(Notice.position)
        .limit(bindparam("limit"))
    )
    # Only positioned notices: a notice without a position yet may still get one below nothing handed out so far,
    # but never below a position already visible (see app/services/sequencer.py).
    if after:
        stmt = stmt.where(Notice.position > bindparam("after", type_=BigInteger))
    else:
        stmt = stmt.where(Notice.position.is_not(None))
    if kind:
        stmt = stmt.where(Notice.kind == bindparam("kind"))
    if member:
        stmt = stmt.where(Notice.member_card_no == bindparam("member_card_no"))
    if status:
        stmt = stmt.where(Notice.status == bindparam("status"))
    if since:
        stmt = stmt.where(Notice.created_at >= bindparam("since", type_=UTCDateTime))
    if overdue is not None:
        late = (Notice.due_date < bindparam("today")) & (Notice.status != NoticeStatus.answered.value)
        stmt = stmt.where(late if overdue else ~late | Notice.due_date.is_(None))
    return Prepared(stmt)


async def insert_notice(session: AsyncSession, notice: Notice, document_ids: list[uuid.UUID]) -> None:
    """Store a new notice (without a position) and the documents it carries, with the request's last statement
    (nothing in the request reads them back)."""
    await later(session, _INSERT, notice.model_dump(exclude={"seq", "position"}))
    for document_id in document_ids:
        await later(session, _INSERT_DOCUMENT, {"notice_id": notice.id, "document_id": document_id})


async def get_visible(
    session: AsyncSession, *, org: str, notice_id: uuid.UUID, for_update: bool = False
) -> NoticeRow | None:
    """A notice the committee `org` sent or received."""
    row = await _visible(for_update).fetchrow(session, {"notice_id": notice_id, "org": org})
    return NoticeRow(**row) if row is not None else None


async def thread(session: AsyncSession, *, org: str, notice_id: uuid.UUID) -> list[NoticeRow]:
    """Every notice of the thread of `notice_id` that `org` may see, oldest first (empty when it may see none)."""
    return _rows(await _thread().fetch(session, {"notice_id": notice_id, "org": org}))


async def page(
    session: AsyncSession, *, org: str, box: str, filters: PullFilter, after: int | None, limit: int, today: date
) -> list[NoticeRow]:
    """Positioned notices of the committee's inbox or outbox, after position `after`, in position order."""
    stmt = _page(
        box,
        bool(filters.kind),
        bool(filters.member_card_no),
        bool(filters.status),
        bool(filters.since),
        filters.overdue,
        after is not None,
    )
    params = {
        "org": org,
        "limit": limit,
        "after": after,
        "kind": filters.kind,
        "member_card_no": filters.member_card_no,
        "status": filters.status,
        "since": filters.since,
        "today": today,
    }
    return _rows(await stmt.fetch(session, params))


async def legacy_position(session: AsyncSession, seq: int) -> int | None:
    """The position of the notice numbered `seq` (cursors handed out before positions existed)."""
    row = await _LEGACY_POSITION.fetchrow(session, {"seq": seq})
    return row["position"] if row is not None else None


async def mark_delivered(session: AsyncSession, notices: list[NoticeRow], now: datetime) -> None:
    """Record the first delivery of these notices, in one statement with the request's last, and on the rows given
    (a notice another request delivered meanwhile keeps its first delivery time in the database)."""
    pending = [n for n in notices if n.delivered_at is None]
    if not pending:
        return
    await later(session, _MARK_DELIVERED, {"ids": [n.id for n in pending], "now": now})
    for n in pending:
        n.delivered_at = now
        if n.status == NoticeStatus.sent.value:
            n.status = NoticeStatus.delivered.value


async def acknowledge(session: AsyncSession, notice: NoticeRow, *, account_id: uuid.UUID, now: datetime) -> NoticeRow:
    """Record the recipient's first acknowledgement, with the request's last statement; the notice as it is then."""
    await later(session, _ACKNOWLEDGE, {"notice_id": notice.id, "now": now, "account_id": account_id})
    notice.acknowledged_at, notice.acknowledged_by = now, account_id
    notice.delivered_at = notice.delivered_at or now
    if notice.status != NoticeStatus.answered.value:
        notice.status = NoticeStatus.acknowledged.value
    return notice


async def mark_answered(session: AsyncSession, notice_id: uuid.UUID, now: datetime) -> None:
    await _ANSWERED.execute(session, {"notice_id": notice_id, "now": now})


async def acknowledge_pending(
    session: AsyncSession, notice_id: uuid.UUID, *, account_id: uuid.UUID, now: datetime
) -> None:
    """Acknowledge a notice unless it already is (the original of a transfer its successor acknowledged)."""
    await later(session, _ACKNOWLEDGE, {"notice_id": notice_id, "now": now, "account_id": account_id})


async def by_id(session: AsyncSession, notice_id: uuid.UUID, *, for_update: bool = False) -> NoticeRow | None:
    """Any notice by id, whoever may see it: for the service's own rules (the original behind a transfer)."""
    stmt = select(*_ROW).where(Notice.id == notice_id)
    if for_update:
        stmt = stmt.with_for_update(of=Notice.__table__)
    row = (await session.execute(stmt)).mappings().first()
    return NoticeRow(**row) if row is not None else None


async def insert_notices(session: AsyncSession, notices: list[Notice]) -> None:
    """Store many new notices (without positions, carrying no documents) in one statement."""
    if notices:
        await session.execute(insert(Notice.__table__), [n.model_dump(exclude={"seq", "position"}) for n in notices])


async def is_superseded(session: AsyncSession, notice_id: uuid.UUID) -> bool:
    """Whether a correction of this notice exists."""
    return bool(await session.scalar(select(exists().where(Notice.supersedes == notice_id))))


async def carriers(session: AsyncSession, *, document_id: uuid.UUID, sender_org: str) -> list[Notice]:
    """The notices `sender_org` sent carrying the document, oldest first."""
    stmt = (
        select(Notice)
        .join(NoticeDocument, NoticeDocument.notice_id == Notice.id)
        .where(NoticeDocument.document_id == document_id, Notice.sender_org == sender_org)
        .order_by(Notice.seq)
    )
    return list((await session.execute(stmt)).scalars())


# Positions: the sequencer (app/services/sequencer.py) numbers committed notices that have none.

_INSERTED = "mx_notices_pending"  # session.info key: this transaction inserted notices
_on_inserted_commit: list[Callable[[], None]] = []

# The notices without a position, oldest first, numbered after the highest position. Rows a concurrent
# transaction has locked (an acknowledgement of a fresh notice) are skipped and numbered in the next round.
_NUMBER_POSTGRES = text(
    "WITH head AS (SELECT coalesce(max(position), 0) AS top FROM notices), "
    "batch AS (SELECT seq FROM notices WHERE position IS NULL ORDER BY seq LIMIT :limit FOR UPDATE SKIP LOCKED), "
    "numbered AS (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM batch) "
    "UPDATE notices SET position = head.top + numbered.n FROM head, numbered WHERE notices.seq = numbered.seq"
)
_NUMBER_SQLITE = text(
    "WITH head AS (SELECT coalesce(max(position), 0) AS top FROM notices), "
    "numbered AS (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM "
    "(SELECT seq FROM notices WHERE position IS NULL ORDER BY seq LIMIT :limit)) "
    "UPDATE notices SET position = head.top + numbered.n FROM head, numbered WHERE notices.seq = numbered.seq"
)


async def number_unpositioned(session: AsyncSession, *, batch: int) -> int:
    """Give up to `batch` notices without a position the next positions, in `seq` order, in the session's
    transaction (the caller holds the sequencer's lock); how many were numbered."""
    stmt = _NUMBER_POSTGRES if session.bind.dialect.name == "postgresql" else _NUMBER_SQLITE
    result = await session.execute(stmt, {"limit": batch})
    return result.rowcount


def mark_inserted(session: AsyncSession) -> None:
    """This session's transaction inserted notices: once it commits, the callbacks of `on_inserted_commit` run."""
    session.info[_INSERTED] = True


def on_inserted_commit(callback: Callable[[], None]) -> None:
    """Call `callback` after each commit of a transaction marked with `mark_inserted`."""
    _on_inserted_commit.append(callback)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_INSERTED, False):
        for callback in _on_inserted_commit:
            callback()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_INSERTED, None)
