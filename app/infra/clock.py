"""Dates as Hà Nội sees them (UTC+7, no daylight saving): due dates, overdue, "not in the future"."""

from datetime import UTC, date, datetime, timedelta, timezone

HANOI = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")


def today() -> date:
    return datetime.now(UTC).astimezone(HANOI).date()
