"""The reconciliation report's queries: what is still open between the two sides, in the caller's scope (the
notices' scope rule, app.repositories.notices.readable)."""

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, String, and_, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.member import Member
from app.models.notice import Notice, NoticeKind, NoticeStatus
from app.repositories.notices import readable

K = NoticeKind


def _open_categories(now: datetime, days: int) -> dict[str, ColumnElement[bool]]:
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
                [K.member_introduced.value, K.feedback_requested.value, K.member_residence_changed.value]
            ),
        ),
    }


async def open_items(
    session: AsyncSession, *, org: str, now: datetime, days: int, limit: int
) -> list[tuple[str, Notice, str | None]]:
    """(category, notice, member's name) of each open item `org` may see, at most `limit` per category."""
    found = []
    for category, condition in _open_categories(now, days).items():
        rows = await session.execute(
            select(Notice, Member.full_name)
            .join(Member, Member.party_card_no == Notice.member_card_no, isouter=True)
            .where(readable(org), condition)
            .order_by(Notice.seq)
            .limit(limit)
        )
        found += [(category, notice, name) for notice, name in rows.all()]
    return found
