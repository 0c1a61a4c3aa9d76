"""Feedback rounds in the database: rounds, their items, the batched writes of a round's requests, progress
counts, overdue requests, and the locks that keep one writer per round and per year."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.infra.db import db
from app.models.base import utcnow
from app.models.feedback import FeedbackRound, FeedbackRoundItem
from app.models.member import Member
from app.models.notice import Notice, NoticeStatus
from app.models.organization import Organization
from app.models.registry import NoticeTransfer
from app.models.subscription import Delivery

_running: set[uuid.UUID] = set()
_years: dict[int, asyncio.Lock] = {}
YEAR_LOCK_SPACE = 0x4D58  # advisory-lock namespace of "one round of a year writes at a time"


async def find(session: AsyncSession, *, org_code: str, year: int, scope_key: str) -> FeedbackRound | None:
    """The workplace committee's round of the year with this scope."""
    stmt = select(FeedbackRound).where(
        FeedbackRound.org_code == org_code, FeedbackRound.year == year, FeedbackRound.scope_key == scope_key
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get(session: AsyncSession, round_id: uuid.UUID) -> FeedbackRound | None:
    return await session.get(FeedbackRound, round_id)


async def add(session: AsyncSession, rnd: FeedbackRound) -> None:
    session.add(rnd)
    await session.flush()


async def set_status(session: AsyncSession, round_id: uuid.UUID, *, status: str, error: str | None) -> None:
    """A round's end: completed (with its time) or failed (with the error's name)."""
    values: dict[str, Any] = {"status": status, "error": error, "updated_at": utcnow()}
    if status == "completed":
        values["completed_at"] = values["updated_at"]
    await session.execute(update(FeedbackRound).where(FeedbackRound.id == round_id).values(**values))


@asynccontextmanager
async def exclusive(round_id: uuid.UUID, year: int) -> AsyncIterator[bool]:
    """One runner per round, and one writing round per year (so two rounds of a year never ask a member twice):
    in this process, and across processes on PostgreSQL (advisory locks; the year's is waited for)."""
    if round_id in _running:
        yield False
        return
    _running.add(round_id)
    try:
        async with _years.setdefault(year, asyncio.Lock()):
            if db.engine.dialect.name != "postgresql":
                yield True
                return
            lock = int.from_bytes(round_id.bytes[:8], "big", signed=True)
            async with db.engine.connect() as conn:
                got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock})).scalar()
                if got:
                    await conn.execute(
                        text("SELECT pg_advisory_lock(:ns, :year)"), {"ns": YEAR_LOCK_SPACE, "year": year}
                    )
                await conn.commit()
                try:
                    yield bool(got)
                finally:
                    if got:
                        await conn.execute(
                            text("SELECT pg_advisory_unlock(:ns, :year), pg_advisory_unlock(:k)"),
                            {"ns": YEAR_LOCK_SPACE, "year": year, "k": lock},
                        )
                        await conn.commit()
    finally:
        _running.discard(round_id)


async def next_members(
    rnd: FeedbackRound, cursor: str, batch: int, *, today: date
) -> tuple[list[tuple], str | None, set[str], set[str]]:
    """The next `batch` members by card number after `cursor`: those of the round's workplace committee (and units),
    each with whether its residence committee has ended by `today`; the last card read (None: no member left);
    which of them the round already has, and which another round of the same year already asked."""
    # A window of the primary key, filtered afterwards: each member is read once over the whole round, whatever the
    # planner knows of the table (filtering first, with no statistics after a bulk load, re-read the committee's
    # members at every batch: quadratic).
    window = select(Member).where(Member.party_card_no > cursor).order_by(Member.party_card_no).limit(batch).subquery()
    ended = select(Organization.valid_to).where(Organization.code == window.c.residence_org).scalar_subquery()
    mine = window.c.workplace_org == rnd.org_code
    if rnd.scope:
        mine = mine & window.c.workplace_unit_code.in_(rnd.scope)
    stmt = select(
        window.c.party_card_no,
        window.c.residence_org,
        window.c.residence_status,
        window.c.exemption_category,
        window.c.workplace_unit_code,
        case((ended <= today, 1), else_=0).label("residence_ended"),
        case((mine, 1), else_=0).label("mine"),
    ).order_by(window.c.party_card_no)
    async with db.sessions() as session:
        rows = (await session.execute(stmt)).all()
        if not rows:
            await session.rollback()
            return [], None, set(), set()
        last = rows[-1][0]
        members = [tuple(r[:6]) for r in rows if r[6]]
        done: set[str] = set()
        asked: set[str] = set()
        if members:  # a range of the primary key, not a long IN list
            in_range = (FeedbackRoundItem.member_card_no > cursor) & (FeedbackRoundItem.member_card_no <= last)
            done = set(
                (
                    await session.execute(
                        select(FeedbackRoundItem.member_card_no).where(FeedbackRoundItem.round_id == rnd.id, in_range)
                    )
                ).scalars()
            )
            asked = set(
                (
                    await session.execute(
                        select(FeedbackRoundItem.member_card_no)
                        .join(FeedbackRound, FeedbackRound.id == FeedbackRoundItem.round_id)
                        .where(
                            FeedbackRound.year == rnd.year,
                            FeedbackRound.id != rnd.id,
                            FeedbackRoundItem.status == "requested",
                            in_range,
                        )
                    )
                ).scalars()
            )
        await session.rollback()
    return members, last, done, asked


async def bulk_insert(
    session: AsyncSession, table: Any, packed: tuple[list[str], list[tuple]], *, numbered: tuple[str, int] | None = None
) -> None:
    """Insert many rows: COPY on PostgreSQL (several times faster than INSERT), executemany elsewhere; `numbered`:
    (column, first value) numbers the rows in order."""
    columns, records = packed
    if not records:
        return
    if numbered is not None:
        column, first = numbered
        columns = [*columns, column]
        records = [(*r, n) for n, r in enumerate(records, start=first)]
    if session.bind.dialect.name != "postgresql":
        await session.execute(insert(table), [dict(zip(columns, r, strict=True)) for r in records])
        return
    conn = await session.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN with the transaction's first statement: a COPY straight on the
        # driver would run (and commit) on its own, and a batch that fails after it would leave it behind.
        await conn.exec_driver_sql("SELECT 1")
    # Same connection, same transaction as the session; absent columns (seq) take their defaults.
    await driver.copy_records_to_table(table.name, records=records, columns=columns)


async def write_items(session: AsyncSession, rows: dict[str, Any]) -> None:
    """A batch of a round, first: its items."""
    await bulk_insert(session, FeedbackRoundItem.__table__, rows["items"])


async def write_notices(session: AsyncSession, rows: dict[str, Any], *, first_position: int) -> None:
    """A batch of a round, next: its notices, numbered from `first_position` in order, and their deliveries."""
    await bulk_insert(session, Notice.__table__, rows["notices"], numbered=("position", first_position))
    await bulk_insert(session, Delivery.__table__, rows["deliveries"])


async def count_batch(session: AsyncSession, round_id: uuid.UUID, *, items: int, requested: int) -> None:
    """A batch of a round, last: the round's counts (the round's row stays locked only until the commit after)."""
    await session.execute(
        update(FeedbackRound)
        .where(FeedbackRound.id == round_id)
        .values(
            processed=FeedbackRound.processed + items,
            requested=FeedbackRound.requested + requested,
            skipped=FeedbackRound.skipped + items - requested,
            updated_at=utcnow(),
        )
    )


Counts = dict[str, int]


async def progress(
    session: AsyncSession,
    round_id: uuid.UUID,
    *,
    district: str | None,
    today: date,
    inherited: list[str] = (),
) -> tuple[list[tuple[str, Counts]], list[tuple[str, Counts]], list[tuple[str, int]]]:
    """Counts per residence committee and per unit, and skipped items per reason; `district`: only that residence
    committee's part, and the part of the committees it succeeded (`inherited`) about members now in its area."""
    mine = FeedbackRoundItem.round_id == round_id
    if district is not None:
        taken_over = FeedbackRoundItem.district.in_(list(inherited)) & (
            select(Member.party_card_no)
            .where(Member.party_card_no == FeedbackRoundItem.member_card_no, Member.residence_org == district)
            .exists()
        )
        mine = mine & ((FeedbackRoundItem.district == district) | taken_over)
    late = (Notice.due_date < today) & (Notice.status != NoticeStatus.answered.value)
    measures = (
        func.sum(case((FeedbackRoundItem.status == "requested", 1), else_=0)),
        func.sum(case((Notice.status == NoticeStatus.answered.value, 1), else_=0)),
        func.sum(case((late, 1), else_=0)),
        func.sum(case((FeedbackRoundItem.status == "skipped", 1), else_=0)),
    )

    async def grouped(column) -> list:
        stmt = (
            select(column, *measures)
            .select_from(FeedbackRoundItem)
            .join(Notice, Notice.id == FeedbackRoundItem.notice_id, isouter=True)
            .where(mine)
            .group_by(column)
            .order_by(column)
        )
        return (await session.execute(stmt)).all()

    def counts(row) -> dict:
        return {"requested": row[1] or 0, "answered": row[2] or 0, "overdue": row[3] or 0, "skipped": row[4] or 0}

    reasons = (
        await session.execute(
            select(FeedbackRoundItem.skip_reason, func.count())
            .where(mine, FeedbackRoundItem.status == "skipped")
            .group_by(FeedbackRoundItem.skip_reason)
            .order_by(FeedbackRoundItem.skip_reason)
        )
    ).all()
    by_district = [(r[0], counts(r)) for r in await grouped(FeedbackRoundItem.district)]
    by_unit = [(r[0], counts(r)) for r in await grouped(FeedbackRoundItem.unit_code)]
    return by_district, by_unit, [(r, c) for r, c in reasons]


async def overdue_requests(
    session: AsyncSession, *, round_id: uuid.UUID | None, today: date, since: datetime, limit: int
) -> list[tuple[FeedbackRoundItem, Notice, str]]:
    """Requested items whose notice is overdue and unanswered, not reminded since `since`, with the committee that
    holds the request now (its recipient, or the successor a registry edition passed it to); locked (others
    skip)."""
    holder = func.coalesce(
        select(NoticeTransfer.to_org)
        .where(NoticeTransfer.original_id == Notice.id)
        .order_by(NoticeTransfer.created_at.desc())
        .limit(1)
        .scalar_subquery(),
        Notice.recipient_org,
    )
    stmt = (
        select(FeedbackRoundItem, Notice, holder)
        .join(Notice, Notice.id == FeedbackRoundItem.notice_id)
        .where(
            FeedbackRoundItem.status == "requested",
            Notice.status != NoticeStatus.answered.value,
            Notice.due_date < today,
            (FeedbackRoundItem.reminded_at.is_(None)) | (FeedbackRoundItem.reminded_at < since),
        )
        .limit(limit)
        .with_for_update(of=FeedbackRoundItem, skip_locked=True)
    )
    if round_id is not None:
        stmt = stmt.where(FeedbackRoundItem.round_id == round_id)
    return [(item, notice, held_by) for item, notice, held_by in (await session.execute(stmt)).all()]
