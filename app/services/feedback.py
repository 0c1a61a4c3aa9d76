"""The annual residence-comment round: a workplace committee asks for comments on each of its eligible members, in
batches; progress is reported to it and to each residence committee for its part; overdue requests are reminded,
never more often than the configured interval."""

import asyncio
import json
import logging
import multiprocessing
import os
import time
import uuid
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from app.errors import NotFound, Unprocessable
from app.infra.clock import today
from app.infra.config import settings
from app.infra.db import Session, db
from app.infra.loops import repeat
from app.infra.security import NOTICE_TYP, BulkSigner, keystore, sign_compact
from app.models.base import utcnow
from app.models.feedback import FeedbackRound
from app.models.member import ResidenceStatus
from app.models.notice import NoticeKind, NoticeStatus
from app.models.organization import OrgSide
from app.principal import Principal
from app.repositories import feedback as repo
from app.repositories import registry as registry_rows
from app.schemas.feedback import (
    Counts,
    DistrictProgress,
    FeedbackRoundCreate,
    FeedbackRoundPublic,
    SkipReason,
    UnitProgress,
)
from app.services import notices, policy, sequencer, webhooks
from app.services.signed import signed_content

log = logging.getLogger("app.feedback")

BATCH = 5000
BUILDERS = 2  # child processes signing batches ahead of the writers
# Two batches written at once, each its own short transaction: one inserts its items while the one before inserts
# its notices (the sequencer's lock lets one at a time number its notices, in turn).
WRITERS = 2
BUILDER_NICE = 5  # the builders yield the CPU to the writers, the database and the requests being served
SKIP_REASONS = {
    ResidenceStatus.introduced.value: "not_yet_accepted",
    ResidenceStatus.not_accepted.value: "not_accepted",
    ResidenceStatus.moved_away.value: "moved_away",
}
ALREADY_REQUESTED = "already_requested"  # asked by another round of the same year: one request per member and year
# The member's residence committee was retired by a registry edition that could not map the member: nobody would
# read a request there (skipped until the workplace committee records the member's new residence).
COMMITTEE_RETIRED = "residence_committee_retired"


def service_principal(org_code: str) -> Principal:
    """The sender of what the service sends on its own for a round (reminders): the round's workplace committee, no
    account."""
    return Principal(
        account_id=None,
        login="service",
        org_code=org_code,
        org_side=OrgSide.workplace.value,
        operator=False,
        roles=frozenset(),
        token_use="system",
        jti="",
    )


def _scope_key(units: list[str]) -> str:
    return ",".join(sorted(set(units))) or "*"


async def start(*, session: Session, principal: Principal, data: FeedbackRoundCreate) -> tuple[FeedbackRound, bool]:
    """Open the caller's round of the year for its members (or find it again); returns (round, created). Requests
    are made by `run`."""
    policy.require_workplace(principal, "Chỉ tổ chức bên nơi làm việc mở đợt xin ý kiến nhận xét.")
    if data.deadline < today():
        raise Unprocessable("Hạn trả lời (deadline) đã qua.", code="due_date_in_past")
    key = _scope_key(data.units)
    existing = await repo.find(session, org_code=principal.org_code, year=data.year, scope_key=key)
    if existing is not None:
        # Running it again adds only the requests still missing (members added or accepted since).
        existing.status, existing.updated_at = "running", utcnow()
        await session.flush()
        return existing, False
    rnd = FeedbackRound(
        org_code=principal.org_code,
        year=data.year,
        deadline=data.deadline,
        scope=sorted(set(data.units)),
        scope_key=key,
        created_by=principal.account_id,
    )
    await repo.add(session, rnd)
    return rnd, True


async def run(round_id: uuid.UUID, *, batch: int | None = None) -> None:
    """Create the round's missing requests in batches (of `BATCH`), each its own short transaction (never one giant
    one)."""
    batch = batch or BATCH
    async with db.sessions() as session:
        year = (await get_round(session=session, round_id=round_id)).year
        await session.rollback()
    async with repo.exclusive(round_id, year) as mine:
        if not mine:
            return
        try:
            await _process(round_id, batch)
        except Exception as exc:
            log.exception("feedback round %s failed", round_id)
            async with db.sessions() as session:
                await repo.set_status(session, round_id, status="failed", error=f"{type(exc).__name__}"[:500])
                await session.commit()


async def _process(round_id: uuid.UUID, batch: int) -> None:
    async with db.sessions() as session:
        rnd = await repo.get(session, round_id)
        subs = {
            org: [webhooks.Wanted(id=s.id, kinds=list(s.kinds) if s.kinds is not None else None) for s in found]
            for org, found in (await webhooks.subscriptions_by_org(session=session)).items()
        }
        await session.commit()
    spec = {
        "id": rnd.id,
        "org_code": rnd.org_code,
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
        writing: deque = deque()
        try:
            while building or not exhausted:
                if not exhausted:
                    members, last, done, asked = await repo.next_members(rnd, cursor, batch, today=today())
                    if last is None:
                        exhausted = True
                    else:
                        cursor = last
                        todo = [m for m in members if m[0] not in done]
                        if todo:
                            building.append(loop.run_in_executor(pool, build_batch, spec, todo, subs, asked))
                if building and (len(building) >= BUILDERS or exhausted):
                    rows = await building.popleft()
                    if len(writing) >= WRITERS:
                        await writing.popleft()
                    writing.append(asyncio.create_task(_write(round_id, rows)))
        finally:
            ended = await asyncio.gather(*writing, return_exceptions=True)  # the batches in flight end first
        for result in ended:
            if isinstance(result, BaseException):
                raise result
    async with db.sessions() as session:
        await repo.set_status(session, round_id, status="completed", error=None)
        await session.commit()


_builder_key: tuple[str, Any] | None = None


def _init_builder(kid: str, private_pem: str) -> None:
    """In the builder process: the signing key, parsed once."""
    global _builder_key
    _builder_key = (kid, BulkSigner(private_pem))
    os.nice(BUILDER_NICE)


def build_batch(
    spec: dict[str, Any], members: list[tuple], subs: dict[str, list], asked: set[str] = frozenset()
) -> dict[str, Any]:
    """The rows of one batch: a signed request per eligible member not yet asked this year, an item per member,
    the deliveries."""
    kid, signer = _builder_key
    now = datetime.now(UTC)
    notice_rows, item_rows, delivery_rows = [], [], []
    payload = {"year": spec["year"], "due_date": spec["deadline"].isoformat()}
    for card, residence, status, exemption, unit, residence_ended in members:
        # The item's `district` column is the member's residence committee, whatever its kind.
        item = dict(
            round_id=spec["id"],
            member_card_no=card,
            district=residence,
            unit_code=unit,
            notice_id=None,
            skip_reason=None,
            reminded_at=None,
        )
        if card in asked:
            item.update(status="skipped", skip_reason=ALREADY_REQUESTED)
        elif residence_ended:
            item.update(status="skipped", skip_reason=COMMITTEE_RETIRED)
        elif status == ResidenceStatus.accepted.value:
            notice_id = _time_ordered_id()
            row = {
                "id": notice_id,
                "kind": NoticeKind.feedback_requested.value,
                "sender_org": spec["org_code"],
                "recipient_org": residence,
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
                subs.get(residence, []), notice_id=notice_id, kind=row["kind"], created_at=now
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


def _time_ordered_id() -> uuid.UUID:
    """A UUID version 7 (RFC 9562: the time in milliseconds, then 74 random bits). A round's 475,000 ids then go
    to the right-hand end of the indexes on notice ids (not to a random page of each, written again in full after
    every checkpoint); they are as unique and as opaque as version 4, and only say when the notice was made, which
    the notice says itself."""
    rand = int.from_bytes(os.urandom(10), "big")
    value = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62 | rand & (2**62 - 1)
    return uuid.UUID(int=value)


def _pack(rows: list[dict], json_columns: set[str], as_text: bool) -> tuple[list[str], list[tuple]]:
    if not rows:
        return [], []
    columns = list(rows[0])
    if as_text:
        return columns, [
            tuple(json.dumps(r[c], separators=(",", ":")) if c in json_columns else r[c] for c in columns) for r in rows
        ]
    return columns, [tuple(r[c] for c in columns) for r in rows]


async def _write(round_id: uuid.UUID, rows: dict[str, Any]) -> None:
    items, requested = len(rows["items"][1]), len(rows["notices"][1])
    if not items:
        return
    async with db.sessions() as session:
        await repo.write_items(session, rows)
        if requested:
            # Numbered as they are inserted, under the sequencer's lock, held from here to the commit (475,000
            # notices updated again afterwards cost the database as much as inserting them). The items before the
            # lock, the round's row after it: the batch before this one commits meanwhile.
            first = await sequencer.number_at_insert(session)
            await repo.write_notices(session, rows, first_position=first)
        await repo.count_batch(session, round_id, items=items, requested=requested)
        await session.commit()


# ---- progress -----------------------------------------------------------------------------------------------


async def get_round(*, session: Session, round_id: uuid.UUID) -> FeedbackRound:
    rnd = await repo.get(session, round_id)
    if rnd is None:
        raise _not_found()
    return rnd


def _not_found() -> NotFound:
    return NotFound("Không tìm thấy đợt xin ý kiến.", code="round_not_found")


async def visible_round(*, session: Session, principal: Principal, round_id: uuid.UUID) -> FeedbackRound:
    """A round the caller may follow: its own (the workplace committee that opened it) or, on the residence side,
    any round (its own part of it); another workplace committee's round does not exist for the caller (404)."""
    rnd = await get_round(session=session, round_id=round_id)
    if rnd.org_code != principal.org_code and not principal.is_residence:
        raise _not_found()
    return rnd


async def progress(*, session: Session, principal: Principal, round_id: uuid.UUID) -> FeedbackRoundPublic:
    """Counts per residence committee and per grassroots unit; the round's owner sees all of it, a residence
    committee only its own part (and the part of the committees it succeeded, about the members it holds now); a
    retired committee's row names its successors."""
    rnd = await visible_round(session=session, principal=principal, round_id=round_id)
    owner = rnd.org_code == principal.org_code
    part = None if owner else principal.org_code
    inherited = await registry_rows.predecessors_of(session, part) if part else []
    by_district, by_unit, reasons = await repo.progress(
        session, round_id, district=part, today=today(), inherited=inherited
    )
    successors = await registry_rows.successors_of(session, [key for key, _ in by_district])
    districts = [
        DistrictProgress(district=key, successors=successors.get(key, []), **counts) for key, counts in by_district
    ]
    units = [UnitProgress(unit_code=key, **counts) for key, counts in by_unit]
    totals = Counts(
        **{k: sum(getattr(d, k) for d in districts) for k in ("requested", "answered", "overdue", "skipped")}
    )
    return FeedbackRoundPublic(
        id=rnd.id, year=rnd.year, deadline=rnd.deadline, units=rnd.scope, status=rnd.status,
        processed=rnd.processed if owner else totals.requested + totals.skipped, totals=totals,
        by_district=districts, by_unit=units, skipped_reasons=[SkipReason(reason=r, count=c) for r, c in reasons],
        created_at=rnd.created_at, completed_at=rnd.completed_at,
    )  # fmt: skip


# ---- reminders ----------------------------------------------------------------------------------------------


async def send_reminders(*, session: Session, round_id: uuid.UUID | None = None, limit: int = 2000) -> int:
    """A reminder to the residence committee for each overdue request not reminded within the interval, sent in the
    name of the round's workplace committee (the request's sender); returns how many."""
    now = utcnow()
    since = now - timedelta(seconds=settings.reminder_interval_seconds)
    rows = await repo.overdue_requests(session, round_id=round_id, today=today(), since=since, limit=limit)
    for item, request, holder in rows:
        payload = {
            "year": request.payload.get("year"),
            "due_date": request.due_date.isoformat(),
            "request_id": str(request.id),
            "overdue_days": max(1, (today() - request.due_date).days),
        }
        await notices.insert_service_notice(
            session=session,
            sender=service_principal(request.sender_org),
            kind=NoticeKind.feedback_reminder,
            recipient=holder,
            member_card_no=request.member_card_no,
            payload=payload,
            thread_id=request.thread_id,
        )
        item.reminded_at = now
    await session.flush()
    return len(rows)


async def remind(*, session: Session, principal: Principal, round_id: uuid.UUID) -> int:
    """Remind now (the round's workplace committee only); still at most once per interval per request."""
    policy.require_workplace(principal, "Chỉ tổ chức bên nơi làm việc gửi nhắc nhở.")
    await visible_round(session=session, principal=principal, round_id=round_id)
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
