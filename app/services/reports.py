"""Reconciliation: what is still open between the two sides, within the caller's scope."""

import csv
import io
from datetime import datetime

from pydantic import BaseModel, Field

from app.infra.clock import today
from app.infra.db import Session
from app.models.base import utcnow
from app.models.notice import NoticeKind
from app.principal import Principal
from app.repositories import reports as rows
from app.services.notices import ANSWER_KINDS

K = NoticeKind
LABELS = {
    "introduced_not_accepted": "Đã giới thiệu, quá {days} ngày chưa tiếp nhận",
    "feedback_unanswered": "Đã xin ý kiến nhận xét, chưa trả lời",
    "residence_change_unacknowledged": "Báo chuyển nơi cư trú, nơi mới chưa xác nhận",
    "delivered_not_acknowledged": "Đã chuyển đến, chưa xác nhận đã nhận",
    "transferred_open": "Tiếp nhận từ tổ chức đã giải thể (sắp xếp lại tổ chức), chưa xử lý xong",
}
# The CSV is read by people in a spreadsheet: Vietnamese headers, the member's name beside the card number.
COLUMNS = {
    "category": "Loại việc",
    "category_label": "Mô tả",
    "notice_id": "Mã thông báo",
    "kind": "Loại thông báo",
    "sender_org": "Bên gửi",
    "recipient_org": "Bên nhận",
    "member_card_no": "Số thẻ đảng viên",
    "member_name": "Họ và tên đảng viên",
    "created_at": "Thời điểm tạo (UTC)",
    "due_date": "Hạn trả lời",
    "overdue": "Quá hạn",
    "age_days": "Số ngày",
    "transferred_to": "Đã chuyển cho tổ chức kế tục",
}


class OpenItem(BaseModel):
    """One thing still open between the two sides."""

    category: str
    category_label: str
    notice_id: str
    kind: str
    sender_org: str
    recipient_org: str
    member_card_no: str
    member_name: str | None = None
    created_at: datetime
    due_date: str | None
    overdue: bool
    age_days: int
    transferred_to: str | None = Field(
        default=None, description="the successor a registry edition passed the notice to (its recipient was retired)"
    )


async def reconciliation(*, session: Session, principal: Principal, days: int, limit: int) -> list[OpenItem]:
    """Open items: introductions not accepted after `days`, comment requests unanswered, moves not acknowledged by
    the new residence committee, and notices delivered but not acknowledged."""
    now = utcnow()
    items: list[OpenItem] = []
    for category, n, member_name, transferred_to in await rows.open_items(
        session, org=principal.org_code, now=now, days=days, limit=limit, answer_kinds=ANSWER_KINDS
    ):
        items.append(OpenItem(
            category=category, category_label=LABELS[category].format(days=days), notice_id=str(n.id),
            kind=n.kind, sender_org=n.sender_org, recipient_org=n.recipient_org, member_card_no=n.member_card_no,
            member_name=member_name,
            created_at=n.created_at, due_date=n.due_date.isoformat() if n.due_date else None,
            overdue=bool(n.due_date and n.due_date < today()), age_days=(now - n.created_at).days,
            transferred_to=transferred_to,
        ))  # fmt: skip
    return items


def to_csv(items: list[OpenItem]) -> bytes:
    """UTF-8 with a BOM, so spreadsheet programs show Vietnamese correctly."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS.values())
    for item in items:
        writer.writerow([_cell(getattr(item, c)) for c in COLUMNS])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _cell(value: object) -> object:
    if isinstance(value, bool):
        return "Có" if value else "Không"
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value
