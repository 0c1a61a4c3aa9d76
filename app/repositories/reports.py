"""The reconciliation report's queries: what is still open between the two sides, in the caller's scope (the
notices it sent or received, app.repositories.notices.participant)."""

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, String, and_, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.member import Member
from app.models.notice import Notice, NoticeKind, NoticeStatus
from app.models.registry import NoticeTransfer
from app.repositories.notices import participant
from app.repositories.registry import open_condition

K = NoticeKind


def _open_categories(now: datetime, days: int, answer_kinds: list[str]) -> dict[str, ColumnElement[bool]]:
    open_ = Notice.status != NoticeStatus.answered.value
    return {
        "introduced_not_accepted": and_(
            Notice.kind == K.member_introduced.value, open_, Notice.created_at < now - timedelta(days=days)
        ),
        "feedback_unanswered": and_(Notice.kind == K.feedback_requested.value, open_),
        "residence_change_unacknowledged": and_(
            Notice.kind == K.member_residence_changed.value,
            Notice.acknowledged_at.is_(None),
            open_,
            cast(Notice.payload["to_org"].as_string(), String) == Notice.recipient_org,
        ),
        "delivered_not_acknowledged": and_(
            Notice.delivered_at.is_not(None),
            Notice.acknowledged_at.is_(None),
            open_,
            Notice.kind.not_in(
                [
                    K.member_introduced.value,
                    K.feedback_requested.value,
                    K.member_residence_changed.value,
                    K.notice_transferred.value,
                ]
            ),
        ),
        # A notice passed on by a registry edition, still to be handled by the successor that received it.
        "transferred_open": and_(
            Notice.kind == K.notice_transferred.value,
            open_condition(answer_kinds, excluded=()),
        ),
    }


async def open_items(
    session: AsyncSession, *, org: str, now: datetime, days: int, limit: int, answer_kinds: list[str]
) -> list[tuple[str, Notice, str | None, str | None]]:
    """(category, notice, member's name, the successor it passed to) of each open item `org` took part in, at most
    `limit` per category."""
    # A registry edition passed the notice on: to whom (the latest transfer).
    transferred_to = (
        select(NoticeTransfer.to_org)
        .where(NoticeTransfer.original_id == Notice.id)
        .order_by(NoticeTransfer.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    found = []
    for category, condition in _open_categories(now, days, answer_kinds).items():
        rows = await session.execute(
            select(Notice, Member.full_name, transferred_to)
            .join(Member, Member.party_card_no == Notice.member_card_no, isouter=True)
            .where(participant(org), condition)
            .order_by(Notice.seq)
            .limit(limit)
        )
        found += [(category, notice, name, to) for notice, name, to in rows.all()]
    return found
