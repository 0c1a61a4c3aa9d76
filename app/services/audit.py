"""The audit log: append entries, seal them into a hash chain, sign checkpoints, verify everything."""

import asyncio
import gc
import hashlib
import json
import logging
import multiprocessing
import os
import uuid
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from json.encoder import encode_basestring
from typing import Any

from jose import jws

from app.errors import BadRequest, NotFound
from app.infra.config import settings
from app.infra.db import Session, SessionFactory
from app.infra.loops import repeat
from app.infra.security import ALGORITHM, CHECKPOINT_TYP, keystore, sign_jws
from app.infra.spool import spool
from app.models.audit import AuditCheckpoint, AuditEntry, AuditVerification
from app.models.base import utcnow
from app.principal import Principal
from app.repositories import audit as audit_rows
from app.repositories import locks
from app.repositories.audit import EntryFilter
from app.schemas.audit import VerificationProblem, VerificationReport
from app.services import policy

log = logging.getLogger("app.audit")

GENESIS = "0" * 64
_SEAL_LOCK = 0x4D58_4155_4449_5431  # advisory lock id: one sealer at a time across processes
HASHED_FIELDS = (  # the fields an entry's hash covers, in this order (also the bench's bulk loader)
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


# The canonical form is json.dumps({field: _plain(value)}, sort_keys=True, separators=(",", ":"),
# ensure_ascii=False). It is written here field by field, in sorted order, with the json module's own encoders
# for the common types (strings: `encode_basestring`, what that call uses; ints: `int.__repr__`; datetimes and
# UUIDs: their plain text, which needs no escaping), and json's encoder for anything else: the same text, several
# times faster, which is what a verification of millions of entries spends its time on.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_SORTED = sorted(range(len(HASHED_FIELDS)), key=lambda i: HASHED_FIELDS[i])
_PREFIX = {i: ("{" if n == 0 else ",") + encode_basestring(HASHED_FIELDS[i]) + ":" for n, i in enumerate(_SORTED)}


def _json_value(value: Any) -> str:
    kind = type(value)
    if value is None:
        return "null"
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    if kind is datetime:
        return '"' + value.isoformat(timespec="microseconds") + '"'
    if isinstance(value, uuid.UUID):  # asyncpg's UUID is a subclass
        return '"' + str(value) + '"'
    return _CANONICAL.encode(_plain(value))


def canonical_form(values: Any) -> str:
    """The canonical JSON text of the `HASHED_FIELDS` fields, given in that order."""
    return "".join([_PREFIX[i] + _json_value(values[i]) for i in _SORTED]) + "}"


def _fields_hash(values: Any) -> str:
    """SHA-256 of the canonical JSON form of the `HASHED_FIELDS` fields, given in that order."""
    return hashlib.sha256(canonical_form(values).encode()).hexdigest()


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 over a canonical JSON form of every recorded field."""
    return _fields_hash([getattr(entry, k) for k in HASHED_FIELDS])


def link_hash(previous: str, entry_digest: str) -> str:
    return hashlib.sha256((previous + entry_digest).encode()).hexdigest()


async def append(*, session: Session, deferred: bool = False, **fields: Any) -> None:
    """Add one entry to the session's transaction (sealed later, in commit order); `deferred`: with the request's
    last statement. Prepared: this runs on every request. `tx` comes from the column's default: the inserting
    transaction's id."""
    await audit_rows.insert_entry(session, {"occurred_at": utcnow(), **fields}, deferred=deferred)


# ---- sealing ------------------------------------------------------------------------------------------------
# The chain is the order. Entries commit in their requests' transactions without a place in it; the sealer (one
# at a time: an advisory lock on PostgreSQL, the single writer on SQLite) chains the committed entries it finds
# unchained, in `seq` order within each batch, after the head. An entry that commits late (its request's
# transaction outlived later ones) is chained when it is found, at the head: the chain records the order in which
# entries became durable, never a guess from transaction ids. Rule for `entry_inserted` (see `verify`): an entry is
# chained only if its `occurred_at` (set when its request began) is at most `audit_late_commit_seconds` before the
# newest link's `sealed_at`; an unchained entry older than that can no longer be a late commit, so it was written
# in afterwards.

_LOOKBACK = 2000  # a quick round looks at the newest entries only: this many seqs below the highest chained one
_THOROUGH_EVERY = 10.0  # seconds between rounds that look at every entry younger than the late-commit window


def _late_commit_cutoff(head_sealed_at: datetime | None) -> datetime | None:
    """Entries dated before this can no longer be chained. Measured from the newest link's sealing time, not from
    the wall clock: a database restored long after its backup still chains the entries that had committed but were
    not chained yet when the backup was taken."""
    if head_sealed_at is None:
        return None
    return head_sealed_at - timedelta(seconds=settings.audit_late_commit_seconds)


async def seal(*, session: Session, batch: int = 500, max_batches: int = 200, thorough: bool = True) -> int:
    """Chain the committed, unchained entries; returns how many. `thorough` looks at every entry of the late-commit
    window (an index range on `occurred_at`), otherwise only at the newest seqs (cheap; the background sealer).

    Runs in the caller's transaction; the chain links are committed with it."""
    total = 0
    for _ in range(max_batches):
        sealed = await _seal_batch(session, batch, thorough)
        total += sealed
        if sealed < batch:
            break
    return total


async def _seal_batch(session: Session, batch: int, thorough: bool) -> int:
    if not await locks.for_transaction(session, _SEAL_LOCK, wait=False):
        return 0  # another process is sealing right now
    head = await audit_rows.last_link(session)
    position, previous = (head.position + 1, head.chain_hash) if head else (0, GENESIS)
    entries = await audit_rows.unchained(
        session,
        limit=batch,
        since=_late_commit_cutoff(head.sealed_at if head else None),
        lookback=_LOOKBACK if not thorough and head else None,
    )
    now = utcnow()
    links = []
    for entry in entries:
        digest = entry_hash(entry)
        previous = link_hash(previous, digest)
        links.append(
            {
                "position": position,
                "entry_seq": entry.seq,
                "entry_hash": digest,
                "chain_hash": previous,
                "sealed_at": now,
            }
        )
        position += 1
    if links:
        await audit_rows.add_links(session, links)
    return len(links)


async def seal_now(sessions: SessionFactory) -> None:
    """A thorough round in a transaction of its own, committed before a verification reads the chain."""
    async with sessions() as session:
        await seal(session=session)
        await session.commit()


async def chain_head(*, session: Session) -> tuple[int, str]:
    head = await audit_rows.last_link(session)
    return (head.position + 1, head.chain_hash) if head else (0, GENESIS)


async def create_checkpoint(*, session: Session) -> AuditCheckpoint:
    """Sign the chain's current size and head hash with the service key."""
    size, head = await chain_head(session=session)
    now = utcnow()
    payload = json.dumps(
        {"iss": settings.token_issuer, "size": size, "head_hash": head, "time": now.isoformat()}, separators=(",", ":")
    ).encode()
    checkpoint = AuditCheckpoint(size=size, head_hash=head, created_at=now, jws=sign_jws(payload, typ=CHECKPOINT_TYP))
    await audit_rows.add_checkpoint(session, checkpoint)
    return checkpoint


async def list_checkpoints(*, session: Session, limit: int) -> list[AuditCheckpoint]:
    """The newest checkpoints first."""
    return await audit_rows.checkpoints(session, limit=limit)


async def run_sealer(*, sessions: SessionFactory, stop: asyncio.Event) -> None:
    """Background loop: seal often; sign a checkpoint now and then when the chain has grown."""
    loop = asyncio.get_running_loop()
    last = {"checkpoint": 0.0, "size": -1, "thorough": 0.0}

    async def step() -> None:
        thorough = loop.time() - last["thorough"] >= _THOROUGH_EVERY
        async with sessions() as session:
            await seal(session=session, thorough=thorough)
            await session.commit()
        if thorough:
            last["thorough"] = loop.time()
        if loop.time() - last["checkpoint"] >= settings.audit_checkpoint_interval_seconds:
            async with sessions() as session:
                size, _ = await chain_head(session=session)
                if size != last["size"]:
                    await create_checkpoint(session=session)
                    await session.commit()
                    last["size"] = size
            last["checkpoint"] = loop.time()

    await repeat(
        step,
        stop=stop,
        every=lambda: settings.audit_seal_interval_seconds,
        log=log,
        failure="audit sealing failed; retrying",
    )


async def replay_spool(sessions: SessionFactory) -> int:
    """Write the entries spooled while the database was down; returns how many were new."""
    return await spool.replay(sessions, append)


async def run_replayer(*, sessions: SessionFactory, stop: asyncio.Event) -> None:
    """Background loop: replay the spool whenever it holds entries and the database takes them."""
    await repeat(
        lambda: replay_spool(sessions),
        stop=stop,
        every=lambda: settings.audit_spool_replay_seconds,
        log=log,
        failure="audit spool replay failed; retrying",
    )


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
# The chain is read in pages and each page is hashed in a worker thread, so the event loop keeps answering other
# requests while a long log is recomputed. A verification may resume: it then starts from the newest stored signed
# checkpoint that an earlier, successful verification covered (its signature proves its head hash), rechecks that
# the stored chain still reaches that head there, and recomputes only what was chained after it. Every run is
# recorded (`audit_verifications`); auditors of committees other than the operator read the latest record.


@dataclass
class _Problem(Exception):
    position: int | None
    entry_seq: int | None
    problem: str
    detail: str


# Where a page row holds each hashed field (a row's fields by index: by name costs several µs each).
_HASHED_AT = [audit_rows.PAGE_FIELDS.index(f"e_{name}") for name in HASHED_FIELDS]


def _page_digest(row: Any) -> str:
    return _fields_hash([row[i] for i in _HASHED_AT])


def _check_page(rows: list, position: int, previous: str, expected: dict, digest=_page_digest) -> tuple[int, str]:
    """Recompute one page of the chain (in a worker thread or process); raises the first problem."""
    for row in rows:
        link_at, entry_seq, stored_hash, stored_chain, seq = row[:5]  # PAGE_FIELDS' first five, by index
        if link_at != position:
            raise _Problem(position, None, "entry_missing", f"Mất mắt xích ở vị trí {position} (bản ghi đã bị xóa).")
        if seq is None:
            raise _Problem(position, entry_seq, "entry_missing", f"Bản ghi số {entry_seq} đã bị xóa khỏi nhật ký.")
        if digest(row) != stored_hash:
            raise _Problem(position, seq, "entry_altered", f"Bản ghi số {seq} đã bị sửa.")
        previous = link_hash(previous, stored_hash)
        if previous != stored_chain:
            raise _Problem(
                position,
                seq,
                "chain_broken",
                f"Chuỗi băm đứt ở vị trí {position}: bị chèn, xóa hoặc đổi thứ tự.",
            )
        for head, name in expected.get(position, []):
            if head != previous:
                raise _Problem(
                    position,
                    seq,
                    "history_rewritten",
                    f"Lịch sử khác với checkpoint {name} tại vị trí {position}.",
                )
        position += 1
    return position, previous


# ---- verification in worker processes ---------------------------------------------------------------------
# A long chain is cut into ranges of positions, each read and recomputed in a worker process on its own connection
# (app.repositories.audit.read_links): every check of an entry needs only that entry, its stored link and the
# stored link before it (link[i] = H(link[i-1], entry_hash[i])), so ranges are independent. The first range starts
# from the chain's state as `verify` has it; every other one from the stored link just before it, which the range
# before has checked. The results are taken in order and the first problem reported is the first in the chain, with
# the same position, entry and wording as page by page. A range must hold every one of its positions; its last
# position missing is reported as a missing link, as the page holding the next link would.

if audit_rows.RANGE_FIELDS[4:] != tuple(f"e_{name}" for name in HASHED_FIELDS):
    raise RuntimeError("read_links' fields are not the hashed fields in order")  # `_range_form` reads them so
_encode, _Q = encode_basestring, '"'


def _range_form(row: Any) -> str:
    """`canonical_form` of a row `read_links` returns (`details` as its JSON text), written column by column for
    the columns' types (tests/test_audit_canonical.py: the same text)."""
    _, _, _, _, seq, occ, req, acc, login, org, jti, act, rtype, res, mref, cp, outcome, status, addr, details = row
    e, j = _encode, _json_value
    return (
        f'{{"action":{e(act) if act.__class__ is str else j(act)}'
        f',"actor_account":{_Q + str(acc) + _Q if isinstance(acc, uuid.UUID) else j(acc)}'
        f',"actor_login":{e(login) if login.__class__ is str else j(login)}'
        f',"actor_org":{e(org) if org.__class__ is str else j(org)}'
        f',"client_address":{e(addr) if addr.__class__ is str else j(addr)}'
        f',"counterpart_org":{e(cp) if cp.__class__ is str else j(cp)}'
        f',"details":{_details_form(details)}'
        f',"http_status":{int.__repr__(status) if status.__class__ is int else j(status)}'
        f',"member_ref":{e(mref) if mref.__class__ is str else j(mref)}'
        f',"occurred_at":{_Q + occ.isoformat(timespec="microseconds") + _Q if occ.__class__ is datetime else j(occ)}'
        f',"outcome":{e(outcome) if outcome.__class__ is str else j(outcome)}'
        f',"request_id":{e(req) if req.__class__ is str else j(req)}'
        f',"resource_id":{e(res) if res.__class__ is str else j(res)}'
        f',"resource_type":{e(rtype) if rtype.__class__ is str else j(rtype)}'
        f',"seq":{int.__repr__(seq) if seq.__class__ is int else j(seq)}'
        f',"token_jti":{e(jti) if jti.__class__ is str else j(jti)}}}'
    )


_DETAILS: dict[str | None, str] = {}  # JSON text as stored -> its canonical form (many entries share details)


def _details_form(text: str | None) -> str:
    form = _DETAILS.get(text)
    if form is None:
        form = _json_value(json.loads(text) if text is not None else None)
        if len(_DETAILS) >= 10_000:
            _DETAILS.clear()
        _DETAILS[text] = form
    return form


def _range_digest(row: Any) -> str:
    return hashlib.sha256(_range_form(row).encode()).hexdigest()


def _check_range(
    source: audit_rows.ChainSource, start: int, end: int, previous: str | None, expected: dict
) -> tuple[int, str, tuple | None]:
    """Recompute positions `start` to `end - 1` (in a worker process) from `previous`, or, when None, from the
    stored link before `start`. Returns (position, previous) after the range and the first problem (its fields) or
    None."""
    # A range is tens of thousands of rows of tracked objects and makes no cycles: the collector's passes over
    # them cost a fifth of the reading.
    gc.disable()
    try:
        return _check_range_rows(source, start, end, previous, expected)
    finally:
        gc.enable()


def _check_range_rows(
    source: audit_rows.ChainSource, start: int, end: int, previous: str | None, expected: dict
) -> tuple[int, str, tuple | None]:
    rows = audit_rows.read_links(source, start if previous is not None else start - 1, end)
    if previous is None:
        if not rows or rows[0][0] != start - 1:  # the range before reports this link as missing
            missing = _Problem(
                start - 1, None, "entry_missing", f"Mất mắt xích ở vị trí {start - 1} (bản ghi đã bị xóa)."
            )
            return start, "", (missing.position, missing.entry_seq, missing.problem, missing.detail)
        previous = rows[0][3]
        rows = rows[1:]
    try:
        position, previous = _check_page(rows, start, previous, expected, _range_digest)
        if position < end:
            raise _Problem(position, None, "entry_missing", f"Mất mắt xích ở vị trí {position} (bản ghi đã bị xóa).")
    except _Problem as problem:
        return start, "", (problem.position, problem.entry_seq, problem.problem, problem.detail)
    return position, previous, None


_WORKER_NICENESS = 10


def verification_workers(processes: int | None = None, *, fork: bool = False) -> ProcessPoolExecutor:
    """Worker processes for `verify` (one per core by default). `fork` only from a process that has no threads and
    no open connections yet (the command line, before it starts): the workers then start at once, with every
    module already imported; otherwise they are spawned (about a second each to import the service)."""
    if processes is None:
        processes = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    # At a lower priority than the service's own processes on the same host: their requests come first, the
    # verification takes what is left (all of it on an idle host).
    pool = ProcessPoolExecutor(
        processes,
        mp_context=multiprocessing.get_context("fork" if fork else "spawn"),
        initializer=os.nice,
        initargs=(_WORKER_NICENESS,),
    )
    for _ in range(processes):
        pool.submit(int)  # start them now, while the caller does its first reads
    return pool


async def _verify_ranges(
    workers: Executor,
    source: audit_rows.ChainSource,
    position: int,
    previous: str,
    count: int,
    expected: dict,
    chunk: int,
):
    """Recompute `count` links from `position` in worker processes, range by range; yields (position, previous)
    after each range, in order; raises the first problem."""
    loop = asyncio.get_running_loop()
    futures = [
        loop.run_in_executor(
            workers,
            _check_range,
            source,
            start,
            min(start + chunk, position + count),
            previous if start == position else None,
            {at: heads for at, heads in expected.items() if start <= at < start + chunk},
        )
        for start in range(position, position + count, chunk)
    ]
    try:
        for future in futures:
            position, previous, problem = await future
            if problem is not None:
                raise _Problem(*problem)
            yield position, previous
    finally:
        for future in futures:  # after a problem: the ranges not started yet are not needed
            future.cancel()
        await asyncio.gather(*futures, return_exceptions=True)


def _read_stored(stored: list[tuple[int, int, str, str]]) -> list[tuple[int, str, str]]:
    """Check the stored checkpoints' signatures (in a worker thread)."""
    points = []
    for cp_id, cp_size, cp_head, token in stored:
        try:
            size, head = read_checkpoint(token)
        except BadRequest:
            raise _Problem(None, None, "checkpoint_forged", f"Checkpoint #{cp_id} có chữ ký không hợp lệ.") from None
        if (size, head) != (cp_size, cp_head):
            raise _Problem(None, None, "checkpoint_altered", f"Checkpoint #{cp_id} bị sửa.")
        points.append((size, head, f"#{cp_id}"))
    return points


async def _resume_point(read: audit_rows.ChainReader) -> tuple[int, str] | None:
    """(size, head) of the newest stored checkpoint an earlier successful verification covered."""
    last_ok = await read.last_verified_size()
    if not last_ok:
        return None
    token = await read.newest_checkpoint_within(last_ok)
    return await asyncio.to_thread(read_checkpoint, token) if token else None


async def verify(
    *,
    session: Session | None = None,
    sessions: SessionFactory | None = None,
    presented: list[str] = (),
    page: int = 5000,
    resume: bool = False,
    workers: Executor | None = None,
    parallel_from: int = 50_000,
    chunk: int = 20_000,
) -> VerificationReport:
    """Recompute the chain (all of it, or from the resume point); check stored and presented checkpoints; report
    the first bad entry. Hashing runs in worker threads, page by page; with `sessions`, each page is read in a
    transaction of its own (the chain is append-only: pages read one after the other see one growing chain).
    With `workers` (`verification_workers`), a chain of at least `parallel_from` links is read and recomputed in
    those processes instead, `chunk` positions at a time (the links there when it starts)."""
    read = audit_rows.ChainReader(session, sessions)
    presented_points = [read_checkpoint(t) for t in presented]
    start = await _resume_point(read) if resume else None
    start_size = start[0] if start else 0
    points: list[tuple[int, str, str]] = [(s, h, "presented") for s, h in presented_points]
    previous, position = GENESIS, 0
    try:
        stored = await read.stored_checkpoints(min_size=start_size)
        points += await asyncio.to_thread(_read_stored, stored)
        if start:
            # Resume: the stored chain must still reach the checkpoint's signed head at its last position.
            position, previous = start
            stored_head = await read.chain_hash_at(position - 1)
            if stored_head != previous:
                raise _Problem(
                    position - 1,
                    None,
                    "history_rewritten",
                    f"Lịch sử khác với checkpoint đã kiểm tra ở vị trí {position - 1}.",
                )
            for size, head, name in points:  # kept checkpoints from before the resume point: one stored link each
                if 0 < size <= start_size:
                    at = await read.chain_hash_at(size - 1)
                    if at != head:
                        raise _Problem(
                            size - 1,
                            None,
                            "history_rewritten",
                            f"Lịch sử khác với checkpoint {name} tại vị trí {size - 1}.",
                        )
        expected: dict[int, list[tuple[str, str]]] = {}
        for size, head, name in points:
            if size > start_size:
                expected.setdefault(size - 1, []).append((head, name))
        remaining = await read.links_from(position) if workers is not None else 0
        source = read.source() if remaining >= max(parallel_from, 1) else None
        if source is not None:
            ranges = _verify_ranges(workers, source, position, previous, remaining, expected, chunk)
            async for state in ranges:
                position, previous = state
            rows = []
        else:
            rows = await read.page(position, page)
        while rows:
            # The next page is read while this one is hashed.
            following = asyncio.ensure_future(read.page(rows[-1].position + 1, page)) if len(rows) == page else None
            try:
                position, previous = await asyncio.to_thread(_check_page, rows, position, previous, expected)
            except BaseException:
                if following is not None:
                    following.cancel()
                    await asyncio.gather(following, return_exceptions=True)
                raise
            if following is None:
                break
            rows = await following
        for size, _head, name in points:
            if size > position:
                raise _Problem(
                    position,
                    None,
                    "tail_truncated",
                    f"Nhật ký chỉ còn {position} mục, ít hơn {size} mục của checkpoint {name}.",
                )
        # An unchained entry older than the late-commit window cannot be a late commit: it was written in afterwards.
        cutoff = _late_commit_cutoff(await read.newest_sealed_at())
        stray, unsealed = await read.unchained_summary(cutoff)
        if stray is not None:
            raise _Problem(None, stray, "entry_inserted", f"Bản ghi số {stray} được chèn vào ngoài chuỗi.")
    except _Problem as problem:
        return _report(False, position, previous, 0, len(points), problem, start_size if start else None)
    head = previous if position else None
    return _report(True, position, head, unsealed, len(points), None, start_size if start else None)


def _report(
    ok: bool,
    size: int,
    head: str | None,
    unsealed: int,
    checked: int,
    problem: _Problem | None,
    resumed_from: int | None = None,
) -> VerificationReport:
    first = (
        VerificationProblem(
            position=problem.position, entry_seq=problem.entry_seq, problem=problem.problem, detail=problem.detail
        )
        if problem
        else None
    )
    return VerificationReport(
        ok=ok,
        size=size,
        head_hash=head,
        unsealed=unsealed,
        checkpoints_checked=checked,
        first_problem=first,
        verified_at=utcnow(),
        resumed_from=resumed_from,
    )


async def record(*, session: Session, report: VerificationReport, by: str | None) -> None:
    """Keep a verification's outcome: the summary other committees' auditors read, where a later run resumes."""
    await audit_rows.add_verification(
        session,
        AuditVerification(
            verified_at=report.verified_at or utcnow(),
            verified_by=by,
            ok=report.ok,
            size=report.size,
            head_hash=report.head_hash,
            resumed_from=report.resumed_from,
            unsealed=report.unsealed,
            checkpoints_checked=report.checkpoints_checked,
            first_problem=report.first_problem.model_dump() if report.first_problem else None,
        ),
    )


async def verify_for(
    *, session: Session, sessions: SessionFactory, principal: Principal, presented: list[str], resume: bool
) -> VerificationReport:
    """What an auditor may ask: the operator's auditor starts a verification (seal first, then recompute, then record
    it); any other committee's auditor gets the latest recorded verification, never a recomputation of the whole
    log."""
    if not policy.reads_whole_log(principal):
        last = await audit_rows.last_verification(session)
        if last is None:
            raise NotFound("Nhật ký chưa được kiểm tra lần nào.", code="audit_not_verified_yet")
        return VerificationReport(
            ok=last.ok,
            size=last.size,
            head_hash=last.head_hash,
            unsealed=last.unsealed,
            checkpoints_checked=last.checkpoints_checked,
            first_problem=VerificationProblem(**last.first_problem) if last.first_problem else None,
            verified_at=last.verified_at,
            resumed_from=last.resumed_from,
            summary=True,
        )
    # The request's transaction ends here (on SQLite it holds the single write lock); its audit entry and the
    # record of this verification are written in the next one, at the request's commit point.
    await session.commit()
    await seal_now(sessions)
    report = await verify(sessions=sessions, presented=presented, resume=resume)
    await record(session=session, report=report, by=principal.login)
    return report


# ---- reading ------------------------------------------------------------------------------------------------


async def list_entries(
    *, session: Session, principal: Principal, filters: EntryFilter, after: int | None, limit: int
) -> list[AuditEntry]:
    """Entries the auditor may see, oldest first, from the cursor on."""
    return await audit_rows.entries_page(
        session,
        whole_log=policy.reads_whole_log(principal),
        org=principal.org_code,
        filters=filters,
        after=after,
        limit=limit,
    )


async def stream_entries(*, session: Session, principal: Principal, filters: EntryFilter, page: int = 1000):
    """Every matching entry, in pages, for export."""
    after = None
    while True:
        rows = await list_entries(session=session, principal=principal, filters=filters, after=after, limit=page)
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = rows[-1].seq
