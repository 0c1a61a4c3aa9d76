"""The annual residence-comment round: create one comment request per eligible member, in batches, and report
progress; remind districts of overdue requests, never more often than the configured interval."""

import asyncio
import json
import logging
import multiprocessing
import uuid
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from jose import jwk
from sqlalchemy import case, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound, Unprocessable
from app.infra.clock import today
from app.infra.config import settings
from app.infra.db import db
from app.infra.loops import repeat
from app.infra.security import ALGORITHM, NOTICE_TYP, keystore, sign_compact
from app.models.base import utcnow
from app.models.feedback import FeedbackRound, FeedbackRoundItem
from app.models.member import Member, ResidenceStatus
from app.models.notice import Notice, NoticeKind, NoticeStatus
from app.models.subscription import Delivery
from app.principal import Principal
from app.schemas.feedback import (
    Counts,
    DistrictProgress,
    FeedbackRoundCreate,
    FeedbackRoundPublic,
    SkipReason,
    UnitProgress,
)
from app.services import notices, policy, webhooks
from app.services.organizations import KHOI_CODE
from app.services.sequencer import PENDING
from app.services.signed import signed_content

log = logging.getLogger("app.feedback")

BATCH = 5000
BUILDERS = 2  # child processes signing batches ahead of the writer
SKIP_REASONS = {
    ResidenceStatus.introduced.value: "not_yet_accepted",
    ResidenceStatus.not_accepted.value: "not_accepted",
    ResidenceStatus.moved_away.value: "moved_away",
}
# The sender of what the service sends on its own (reminders): the Khối, no account.
SERVICE = Principal(
    account_id=None, login="service", org_code=KHOI_CODE, org_kind="khoi", roles=frozenset(), token_use="system", jti=""
)
_running: set[uuid.UUID] = set()
_years: dict[int, asyncio.Lock] = {}
YEAR_LOCK_SPACE = 0x4D58  # advisory-lock namespace of "one round of a year writes at a time"
ALREADY_REQUESTED = "already_requested"  # asked by another round of the same year: one request per member and year


def _scope_key(units: list[str]) -> str:
    return ",".join(sorted(set(units))) or "*"


async def start(
    *, session: AsyncSession, principal: Principal, data: FeedbackRoundCreate
) -> tuple[FeedbackRound, bool]:
    """Open the year's round (or find it again); returns (round, created). Requests are made by `run`."""
    policy.require_khoi(principal, "Chỉ Đảng ủy Khối mở đợt xin ý kiến nhận xét.")
    if data.deadline < today():
        raise Unprocessable("Hạn trả lời (deadline) đã qua.", code="due_date_in_past")
    key = _scope_key(data.units)
    existing = (
        await session.execute(
            select(FeedbackRound).where(FeedbackRound.year == data.year, FeedbackRound.scope_key == key)
        )
    ).scalar_one_or_none()
    if existing is not None:
        # Running it again adds only the requests still missing (members added or accepted since).
        existing.status, existing.updated_at = "running", utcnow()
        await session.flush()
        return existing, False
    rnd = FeedbackRound(
        year=data.year,
        deadline=data.deadline,
        scope=sorted(set(data.units)),
        scope_key=key,
        created_by=principal.account_id,
    )
    session.add(rnd)
    await session.flush()
    return rnd, True


@asynccontextmanager
async def _exclusive(round_id: uuid.UUID, year: int) -> AsyncIterator[bool]:
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


async def run(round_id: uuid.UUID, *, batch: int = BATCH) -> None:
    """Create the round's missing requests in batches, each its own short transaction (never one giant one)."""
    async with db.sessions() as session:
        year = (await get_round(session=session, round_id=round_id)).year
        await session.rollback()
    async with _exclusive(round_id, year) as mine:
        if not mine:
            return
        try:
            await _process(round_id, batch)
        except Exception as exc:
            log.exception("feedback round %s failed", round_id)
            async with db.sessions() as session:
                await session.execute(
                    update(FeedbackRound)
                    .where(FeedbackRound.id == round_id)
                    .values(status="failed", error=f"{type(exc).__name__}"[:500], updated_at=utcnow())
                )
                await session.commit()


async def _process(round_id: uuid.UUID, batch: int) -> None:
    async with db.sessions() as session:
        rnd = await session.get(FeedbackRound, round_id)
        subs = {
            org: [webhooks.Wanted(id=s.id, kinds=list(s.kinds) if s.kinds is not None else None) for s in found]
            for org, found in (await webhooks.subscriptions_by_org(session=session)).items()
        }
        await session.commit()
    spec = {
        "id": rnd.id,
        "year": rnd.year,
        "deadline": rnd.deadline,
        "created_by": rnd.created_by,
        "copy": db.engine.dialect.name == "postgresql",
    }
    key = keystore.active
    # Building a batch is mostly ECDSA signing: child processes build ahead while this one writes, so building,
    # writing and the database keep both cores busy instead of sharing one interpreter lock.
    with ProcessPoolExecutor(
        max_workers=BUILDERS,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_builder,
        initargs=(key.kid, key.private_pem),
    ) as pool:
        loop = asyncio.get_running_loop()
        cursor, exhausted = "", False
        building: deque = deque()
        writing = None
        while building or not exhausted:
            if not exhausted:
                members, done, asked = await _next_members(rnd, cursor, batch)
                if members:
                    cursor = members[-1][0]
                    todo = [m for m in members if m[0] not in done]
                    building.append(loop.run_in_executor(pool, build_batch, spec, todo, subs, asked))
                else:
                    exhausted = True
            if building and (len(building) >= BUILDERS or exhausted):
                rows = await building.popleft()
                if writing is not None:
                    await writing  # one write at a time: each batch is its own short transaction
                writing = asyncio.create_task(_write(round_id, rows))
        if writing is not None:
            await writing
    async with db.sessions() as session:
        await session.execute(
            update(FeedbackRound)
            .where(FeedbackRound.id == round_id)
            .values(status="completed", completed_at=utcnow(), updated_at=utcnow(), error=None)
        )
        await session.commit()


async def _next_members(rnd: FeedbackRound, cursor: str, batch: int) -> tuple[list[tuple], set[str], set[str]]:
    """The next members by card number, which of them the round already has, and which another round of the same
    year already asked."""
    async with db.sessions() as session:
        stmt = (
            select(
                Member.party_card_no,
                Member.residence_org,
                Member.residence_status,
                Member.exemption_category,
                Member.workplace_unit_code,
            )
            .where(Member.party_card_no > cursor)
            .order_by(Member.party_card_no)
            .limit(batch)
        )
        if rnd.scope:
            stmt = stmt.where(Member.workplace_unit_code.in_(rnd.scope))
        members = [tuple(m) for m in (await session.execute(stmt)).all()]
        done: set[str] = set()
        asked: set[str] = set()
        if members:  # a range of the primary key, not a long IN list
            in_range = (FeedbackRoundItem.member_card_no > cursor) & (
                FeedbackRoundItem.member_card_no <= members[-1][0]
            )
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
    return members, done, asked


_builder_key: tuple[str, Any] | None = None


def _init_builder(kid: str, private_pem: str) -> None:
    """In the builder process: the signing key, parsed once."""
    global _builder_key
    _builder_key = (kid, jwk.construct(private_pem, ALGORITHM))


def build_batch(
    spec: dict[str, Any], members: list[tuple], subs: dict[str, list], asked: set[str] = frozenset()
) -> dict[str, Any]:
    """The rows of one batch: a signed request per eligible member not yet asked this year, an item per member,
    the deliveries."""
    kid, signer = _builder_key
    now = datetime.now(UTC)
    notice_rows, item_rows, delivery_rows = [], [], []
    payload = {"year": spec["year"], "due_date": spec["deadline"].isoformat()}
    for card, district, status, exemption, unit in members:
        item = {
            "round_id": spec["id"],
            "member_card_no": card,
            "district": district,
            "unit_code": unit,
            "notice_id": None,
            "skip_reason": None,
            "reminded_at": None,
        }
        if card in asked:
            item.update(status="skipped", skip_reason=ALREADY_REQUESTED)
        elif status == ResidenceStatus.accepted.value:
            notice_id = uuid.uuid4()
            row = {
                "id": notice_id,
                "kind": NoticeKind.feedback_requested.value,
                "sender_org": KHOI_CODE,
                "recipient_org": district,
                "member_card_no": card,
                "thread_id": notice_id,
                "in_reply_to": None,
                "supersedes": None,
                "payload": payload,
                "due_date": spec["deadline"],
                "status": NoticeStatus.sent.value,
                "created_by": spec["created_by"],
                "created_at": now,
            }
            row["signature"] = sign_compact(signed_content(row, []), signer=signer, kid=kid, typ=NOTICE_TYP)
            notice_rows.append(row)
            delivery_rows += webhooks.delivery_rows(
                subs.get(district, []), notice_id=notice_id, kind=row["kind"], created_at=now
            )
            item.update(status="requested", notice_id=notice_id)
        else:
            reason = f"exempt:{exemption}" if status == ResidenceStatus.exempt.value else SKIP_REASONS[status]
            item.update(status="skipped", skip_reason=reason)
        item_rows.append(item)
    # Ready for COPY: column names once, rows as tuples, JSON already text (small to send back, nothing to redo).
    copy = spec["copy"]
    return {
        "notices": _pack(notice_rows, {"payload"}, copy),
        "items": _pack(item_rows, set(), copy),
        "deliveries": _pack(delivery_rows, set(), copy),
    }


def _pack(rows: list[dict], json_columns: set[str], as_text: bool) -> tuple[list[str], list[tuple]]:
    if not rows:
        return [], []
    columns = list(rows[0])
    if as_text:
        return columns, [
            tuple(json.dumps(r[c], separators=(",", ":")) if c in json_columns else r[c] for c in columns) for r in rows
        ]
    return columns, [tuple(r[c] for c in columns) for r in rows]


async def _bulk_insert(session: AsyncSession, table: Any, packed: tuple[list[str], list[tuple]]) -> None:
    """Insert many rows: COPY on PostgreSQL (several times faster than INSERT), executemany elsewhere."""
    columns, records = packed
    if not records:
        return
    if session.bind.dialect.name != "postgresql":
        await session.execute(insert(table), [dict(zip(columns, r, strict=True)) for r in records])
        return
    raw = await (await session.connection()).get_raw_connection()
    # Same connection, same transaction as the session; absent columns (seq, position) take their defaults.
    await raw.driver_connection.copy_records_to_table(table.name, records=records, columns=columns)


async def _write(round_id: uuid.UUID, rows: dict[str, Any]) -> None:
    items = len(rows["items"][1])
    if not items:
        return
    async with db.sessions() as session:
        session.info[PENDING] = True  # the sequencer numbers these notices once they commit
        await _bulk_insert(session, Notice.__table__, rows["notices"])
        await _bulk_insert(session, Delivery.__table__, rows["deliveries"])
        await _bulk_insert(session, FeedbackRoundItem.__table__, rows["items"])
        requested = len(rows["notices"][1])
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
        await session.commit()


# ---- progress -----------------------------------------------------------------------------------------------


async def get_round(*, session: AsyncSession, round_id: uuid.UUID) -> FeedbackRound:
    rnd = await session.get(FeedbackRound, round_id)
    if rnd is None:
        raise NotFound("Không tìm thấy đợt xin ý kiến.", code="round_not_found")
    return rnd


async def progress(*, session: AsyncSession, principal: Principal, round_id: uuid.UUID) -> FeedbackRoundPublic:
    """Counts per district and per grassroots unit; a district sees only its own part."""
    rnd = await get_round(session=session, round_id=round_id)
    mine = FeedbackRoundItem.round_id == round_id
    if not principal.is_khoi:
        mine = mine & (FeedbackRoundItem.district == principal.org_code)
    late = (Notice.due_date < today()) & (Notice.status != NoticeStatus.answered.value)
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

    districts = [DistrictProgress(district=r[0], **counts(r)) for r in await grouped(FeedbackRoundItem.district)]
    units = [UnitProgress(unit_code=r[0], **counts(r)) for r in await grouped(FeedbackRoundItem.unit_code)]
    reasons = (
        await session.execute(
            select(FeedbackRoundItem.skip_reason, func.count())
            .where(mine, FeedbackRoundItem.status == "skipped")
            .group_by(FeedbackRoundItem.skip_reason)
            .order_by(FeedbackRoundItem.skip_reason)
        )
    ).all()
    totals = Counts(
        **{k: sum(getattr(d, k) for d in districts) for k in ("requested", "answered", "overdue", "skipped")}
    )
    return FeedbackRoundPublic(
        id=rnd.id, year=rnd.year, deadline=rnd.deadline, units=rnd.scope, status=rnd.status,
        processed=rnd.processed if principal.is_khoi else totals.requested + totals.skipped, totals=totals,
        by_district=districts, by_unit=units, skipped_reasons=[SkipReason(reason=r, count=c) for r, c in reasons],
        created_at=rnd.created_at, completed_at=rnd.completed_at,
    )  # fmt: skip


# ---- reminders ----------------------------------------------------------------------------------------------


async def send_reminders(*, session: AsyncSession, round_id: uuid.UUID | None = None, limit: int = 2000) -> int:
    """A reminder to the district for each overdue request not reminded within the interval; returns how many."""
    now = utcnow()
    since = now - timedelta(seconds=settings.reminder_interval_seconds)
    stmt = (
        select(FeedbackRoundItem, Notice)
        .join(Notice, Notice.id == FeedbackRoundItem.notice_id)
        .where(
            FeedbackRoundItem.status == "requested",
            Notice.status != NoticeStatus.answered.value,
            Notice.due_date < today(),
            (FeedbackRoundItem.reminded_at.is_(None)) | (FeedbackRoundItem.reminded_at < since),
        )
        .limit(limit)
        .with_for_update(of=FeedbackRoundItem, skip_locked=True)
    )
    if round_id is not None:
        stmt = stmt.where(FeedbackRoundItem.round_id == round_id)
    rows = (await session.execute(stmt)).all()
    for item, request in rows:
        payload = {
            "year": request.payload.get("year"),
            "due_date": request.due_date.isoformat(),
            "request_id": str(request.id),
            "overdue_days": max(1, (today() - request.due_date).days),
        }
        await notices.insert_service_notice(
            session=session,
            sender=SERVICE,
            kind=NoticeKind.feedback_reminder,
            recipient=request.recipient_org,
            member_card_no=request.member_card_no,
            payload=payload,
            thread_id=request.thread_id,
        )
        item.reminded_at = now
    await session.flush()
    return len(rows)


async def remind(*, session: AsyncSession, principal: Principal, round_id: uuid.UUID) -> int:
    """Remind now (Khối only); still at most once per interval per request."""
    policy.require_khoi(principal, "Chỉ Đảng ủy Khối gửi nhắc nhở.")
    await get_round(session=session, round_id=round_id)
    return await send_reminders(session=session, round_id=round_id)


async def remind_overdue() -> int:
    """One round of reminders in a transaction of its own."""
    async with db.sessions() as session:
        sent = await send_reminders(session=session)
        await session.commit()
    if sent:
        log.info("sent %d feedback reminders", sent)
    return sent


async def run_reminders(*, stop: asyncio.Event) -> None:
    """Background loop: check for overdue requests now and then."""
    await repeat(
        remind_overdue,
        stop=stop,
        every=lambda: settings.reminder_check_seconds,
        log=log,
        failure="reminder round failed; retrying later",
    )
