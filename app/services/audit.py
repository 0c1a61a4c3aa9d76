"""The audit log: append entries, seal them into a hash chain, sign checkpoints, verify everything."""

import asyncio
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jose import jws
from sqlalchemy import func, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import settings
from app.errors import BadRequest
from app.models.audit import AuditChainLink, AuditCheckpoint, AuditEntry, VerificationProblem, VerificationReport
from app.models.base import utcnow
from app.principal import Principal
from app.security import ALGORITHM, CHECKPOINT_TYP, keystore, sign_jws
from app.services.scoping import audit_entries_visible_to
from app.statements import Prepared, defer

log = logging.getLogger("app.audit")

GENESIS = "0" * 64
_SEAL_LOCK = 0x4D58_4155_4449_5431  # advisory lock id: one sealer at a time across processes
_HASHED = (
    "seq",
    "occurred_at",
    "request_id",
    "actor_account",
    "actor_login",
    "actor_org",
    "token_jti",
    "action",
    "resource_type",
    "resource_id",
    "member_ref",
    "counterpart_org",
    "outcome",
    "http_status",
    "client_address",
    "details",
)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 over a canonical JSON form of every recorded field."""
    canonical = json.dumps(
        {k: _plain(getattr(entry, k)) for k in _HASHED}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def link_hash(previous: str, entry_digest: str) -> str:
    return hashlib.sha256((previous + entry_digest).encode()).hexdigest()


_ENTRY_FIELDS = [name for name in _HASHED if name != "seq"]
_INSERT_ENTRY = Prepared(insert(AuditEntry.__table__), column_keys=_ENTRY_FIELDS)


async def append(*, session: AsyncSession, deferred: bool = False, **fields: Any) -> None:
    """Add one entry to the session's transaction (sealed later, in commit order); `deferred`: with the request's
    last statement. Prepared: this runs on every request. `tx` comes from the column's default: the inserting
    transaction's id."""
    params = {"occurred_at": utcnow(), **fields}
    if deferred:
        defer(session, _INSERT_ENTRY, params)
    else:
        await _INSERT_ENTRY.execute(session, params)


# ---- sealing ------------------------------------------------------------------------------------------------


async def seal(*, session: AsyncSession, batch: int = 500, max_batches: int = 200) -> int:
    """Chain every entry whose transaction, and every older one, has finished; returns how many.

    Runs in the caller's transaction; the chain links are committed with it."""
    total = 0
    for _ in range(max_batches):
        sealed = await _seal_batch(session, batch)
        total += sealed
        if sealed < batch:
            break
    return total


async def _seal_batch(session: AsyncSession, batch: int) -> int:
    postgres = session.bind.dialect.name == "postgresql"
    if postgres and not await session.scalar(select(func.pg_try_advisory_xact_lock(_SEAL_LOCK))):
        return 0  # another process is sealing right now
    head = (
        await session.execute(
            select(
                AuditChainLink.position, AuditChainLink.chain_hash, AuditChainLink.entry_tx, AuditChainLink.entry_seq
            )
            .order_by(AuditChainLink.position.desc())
            .limit(1)
        )
    ).first()
    position, previous = (head.position + 1, head.chain_hash) if head else (0, GENESIS)
    # Plain rows, not ORM objects: the sealer runs in the service's event loop, so each batch should be quick.
    stmt = select(*AuditEntry.__table__.columns).order_by(AuditEntry.tx, AuditEntry.seq).limit(batch)
    if head:
        stmt = stmt.where(tuple_(AuditEntry.tx, AuditEntry.seq) > tuple_(head.entry_tx, head.entry_seq))
    if postgres:
        stmt = stmt.where(AuditEntry.tx < func.txid_snapshot_xmin(func.txid_current_snapshot()))
    entries = list(await session.execute(stmt))
    now = utcnow()
    links = []
    for entry in entries:
        digest = entry_hash(entry)
        previous = link_hash(previous, digest)
        links.append(
            {
                "position": position,
                "entry_seq": entry.seq,
                "entry_tx": entry.tx,
                "entry_hash": digest,
                "chain_hash": previous,
                "sealed_at": now,
            }
        )
        position += 1
    if links:
        await session.execute(AuditChainLink.__table__.insert(), links)
    return len(links)


async def chain_head(*, session: AsyncSession) -> tuple[int, str]:
    head = (
        await session.execute(
            select(AuditChainLink.position, AuditChainLink.chain_hash).order_by(AuditChainLink.position.desc()).limit(1)
        )
    ).first()
    return (head.position + 1, head.chain_hash) if head else (0, GENESIS)


async def create_checkpoint(*, session: AsyncSession) -> AuditCheckpoint:
    """Sign the chain's current size and head hash with the service key."""
    size, head = await chain_head(session=session)
    now = utcnow()
    payload = json.dumps(
        {"iss": settings.token_issuer, "size": size, "head_hash": head, "time": now.isoformat()}, separators=(",", ":")
    ).encode()
    checkpoint = AuditCheckpoint(size=size, head_hash=head, created_at=now, jws=sign_jws(payload, typ=CHECKPOINT_TYP))
    session.add(checkpoint)
    await session.flush()
    return checkpoint


async def list_checkpoints(*, session: AsyncSession, limit: int) -> list[AuditCheckpoint]:
    """The newest checkpoints first."""
    stmt = select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def run_sealer(*, sessions: async_sessionmaker, stop) -> None:
    """Background loop: seal often; sign a checkpoint now and then when the chain has grown."""
    last_checkpoint, last_size = 0.0, -1
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            async with sessions() as session:
                await seal(session=session)
                await session.commit()
            if loop.time() - last_checkpoint >= settings.audit_checkpoint_interval_seconds:
                async with sessions() as session:
                    size, _ = await chain_head(session=session)
                    if size != last_size:
                        await create_checkpoint(session=session)
                        await session.commit()
                        last_size = size
                last_checkpoint = loop.time()
        except Exception:
            log.warning("audit sealing failed; retrying", exc_info=True)
        try:
            await asyncio.wait_for(stop.wait(), timeout=settings.audit_seal_interval_seconds)
        except TimeoutError:
            pass


def read_checkpoint(token: str) -> tuple[int, str]:
    """Verify a checkpoint's signature against the service keys; returns (size, head_hash)."""
    try:
        header = jws.get_unverified_header(token)
        key = keystore.get(header.get("kid", "")) if isinstance(header.get("kid"), str) else None
        if header.get("alg") != ALGORITHM or header.get("typ") != CHECKPOINT_TYP or key is None:
            raise ValueError("not a checkpoint of this service")
        claims = json.loads(jws.verify(token, key.public, algorithms=[ALGORITHM]))
        size, head = claims["size"], claims["head_hash"]
        if not isinstance(size, int) or not isinstance(head, str) or len(head) != 64:
            raise ValueError("malformed checkpoint")
        return size, head
    except Exception as exc:  # noqa: BLE001 - any defect in a presented checkpoint is the caller's error
        raise BadRequest(f"Điểm kiểm tra (checkpoint) không hợp lệ: {exc}"[:300], code="invalid_checkpoint") from None


# ---- verification -------------------------------------------------------------------------------------------


@dataclass
class _Problem(Exception):
    position: int | None
    entry_seq: int | None
    problem: str
    detail: str


async def verify(*, session: AsyncSession, presented: list[str] = (), page: int = 5000) -> VerificationReport:
    """Recompute the whole chain; check stored and presented checkpoints; report the first bad entry."""
    presented_points = [read_checkpoint(t) for t in presented]
    stored = list((await session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.id))).scalars())
    points: list[tuple[int, str, str]] = [(s, h, "presented") for s, h in presented_points]
    for cp in stored:
        try:
            size, head = read_checkpoint(cp.jws)
        except BadRequest:
            return _report(
                False,
                0,
                None,
                0,
                len(points),
                _Problem(None, None, "checkpoint_forged", f"Checkpoint #{cp.id} có chữ ký không hợp lệ."),
            )
        if (size, head) != (cp.size, cp.head_hash):
            return _report(
                False,
                0,
                None,
                0,
                len(points),
                _Problem(None, None, "checkpoint_altered", f"Checkpoint #{cp.id} bị sửa."),
            )
        points.append((size, head, f"#{cp.id}"))
    expected = {}
    for size, head, name in points:
        if size > 0:
            expected.setdefault(size - 1, []).append((head, name))
    previous, position, last_seq, last_tx = GENESIS, 0, None, None
    try:
        while True:
            rows = (
                await session.execute(
                    select(AuditChainLink, AuditEntry)
                    .join(AuditEntry, AuditEntry.seq == AuditChainLink.entry_seq, isouter=True)
                    .where(AuditChainLink.position >= position)
                    .order_by(AuditChainLink.position)
                    .limit(page)
                )
            ).all()
            for link, entry in rows:
                if link.position != position:
                    raise _Problem(
                        position, None, "entry_missing", f"Mất mắt xích ở vị trí {position} (bản ghi đã bị xóa)."
                    )
                if entry is None:
                    raise _Problem(
                        position,
                        link.entry_seq,
                        "entry_missing",
                        f"Bản ghi số {link.entry_seq} đã bị xóa khỏi nhật ký.",
                    )
                if entry_hash(entry) != link.entry_hash:
                    raise _Problem(position, entry.seq, "entry_altered", f"Bản ghi số {entry.seq} đã bị sửa.")
                previous = link_hash(previous, link.entry_hash)
                if previous != link.chain_hash:
                    raise _Problem(
                        position,
                        entry.seq,
                        "chain_broken",
                        f"Chuỗi băm đứt ở vị trí {position}: bị chèn, xóa hoặc đổi thứ tự.",
                    )
                for head, name in expected.get(position, []):
                    if head != previous:
                        raise _Problem(
                            position,
                            entry.seq,
                            "history_rewritten",
                            f"Lịch sử khác với checkpoint {name} tại vị trí {position}.",
                        )
                last_seq, last_tx = entry.seq, entry.tx
                position += 1
            if len(rows) < page:
                break
        for size, _head, name in points:
            if size > position:
                raise _Problem(
                    position,
                    None,
                    "tail_truncated",
                    f"Nhật ký chỉ còn {position} mục, ít hơn {size} mục của checkpoint {name}.",
                )
        if last_seq is not None:
            # An entry slipped in below the sealed watermark was never chained: it was inserted afterwards.
            stray = await session.scalar(
                select(AuditEntry.seq)
                .where(tuple_(AuditEntry.tx, AuditEntry.seq) <= tuple_(last_tx, last_seq))
                .where(~AuditEntry.seq.in_(select(AuditChainLink.entry_seq)))
                .order_by(AuditEntry.seq)
                .limit(1)
            )
            if stray is not None:
                raise _Problem(None, stray, "entry_inserted", f"Bản ghi số {stray} được chèn vào ngoài chuỗi.")
    except _Problem as problem:
        return _report(False, position, previous, 0, len(points), problem)
    unsealed = await session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(tuple_(AuditEntry.tx, AuditEntry.seq) > tuple_(last_tx, last_seq))
        if last_seq is not None
        else select(func.count()).select_from(AuditEntry)
    )
    return _report(True, position, previous if position else None, unsealed or 0, len(points), None)


def _report(
    ok: bool, size: int, head: str | None, unsealed: int, checked: int, problem: _Problem | None
) -> VerificationReport:
    first = (
        VerificationProblem(
            position=problem.position, entry_seq=problem.entry_seq, problem=problem.problem, detail=problem.detail
        )
        if problem
        else None
    )
    return VerificationReport(
        ok=ok, size=size, head_hash=head, unsealed=unsealed, checkpoints_checked=checked, first_problem=first
    )


# ---- reading ------------------------------------------------------------------------------------------------


@dataclass
class EntryFilter:
    org: str | None = None
    actor: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    member_ref: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _entries_query(principal: Principal, f: EntryFilter):
    stmt = select(AuditEntry).where(audit_entries_visible_to(principal)).order_by(AuditEntry.seq)
    if f.org:
        stmt = stmt.where((AuditEntry.actor_org == f.org) | (AuditEntry.counterpart_org == f.org))
    if f.actor:
        stmt = stmt.where(AuditEntry.actor_login == f.actor)
    for column, value in (
        (AuditEntry.action, f.action),
        (AuditEntry.resource_type, f.resource_type),
        (AuditEntry.resource_id, f.resource_id),
        (AuditEntry.member_ref, f.member_ref),
        (AuditEntry.outcome, f.outcome),
    ):
        if value:
            stmt = stmt.where(column == value)
    if f.since:
        stmt = stmt.where(AuditEntry.occurred_at >= f.since)
    if f.until:
        stmt = stmt.where(AuditEntry.occurred_at < f.until)
    return stmt


async def list_entries(
    *, session: AsyncSession, principal: Principal, filters: EntryFilter, after: int | None, limit: int
) -> list[AuditEntry]:
    """Entries the auditor may see, oldest first, from the cursor on."""
    stmt = _entries_query(principal, filters).limit(limit)
    if after is not None:
        stmt = stmt.where(AuditEntry.seq > after)
    return list((await session.execute(stmt)).scalars())


async def stream_entries(*, session: AsyncSession, principal: Principal, filters: EntryFilter, page: int = 1000):
    """Every matching entry, in pages, for export."""
    after = None
    while True:
        rows = await list_entries(session=session, principal=principal, filters=filters, after=after, limit=page)
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = rows[-1].seq
