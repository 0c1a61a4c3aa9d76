"""The audit log in the database: the scope rule (which entries an auditor may read), the append of an entry, which
runs on every request (prepared), the chain's links, checkpoints and verification records, and the reads of a
verification (app/services/audit.py hashes; nothing here does)."""

import asyncio
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
from sqlalchemy import ColumnElement, Row, Select, exists, func, insert, or_, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.infra.db import READER
from app.models.audit import AuditChainLink, AuditCheckpoint, AuditEntry, AuditVerification
from app.repositories.prepared import Prepared, later

# Every recorded field but `seq` (the column's own sequence).
ENTRY_FIELDS = [c.name for c in AuditEntry.__table__.columns if c.name != "seq"]
_INSERT_ENTRY = Prepared(insert(AuditEntry.__table__), column_keys=ENTRY_FIELDS)


def readable(*, whole_log: bool, org: str) -> ColumnElement[bool]:
    """The scope rule for audit entries, and the only one: `whole_log` (the operator's auditors) everything;
    otherwise the caller's own committee's actions and those about it."""
    if whole_log:
        return true()
    return or_(AuditEntry.actor_org == org, AuditEntry.counterpart_org == org)


async def insert_entry(session: AsyncSession, fields: dict[str, Any], *, deferred: bool) -> None:
    """Add one entry to the session's transaction; `deferred`: with the request's last statement."""
    if deferred:
        await later(session, _INSERT_ENTRY, fields)
    else:
        await _INSERT_ENTRY.execute(session, fields)


# ---- the chain --------------------------------------------------------------------------------------------------

# An entry that has no link in the chain yet.
UNCHAINED = ~exists().where(AuditChainLink.entry_seq == AuditEntry.seq)


class ChainEnd(NamedTuple):
    """The newest link: its position, chain hash and when it was sealed."""

    position: int
    chain_hash: str
    sealed_at: datetime


async def last_link(session: AsyncSession) -> ChainEnd | None:
    """The newest link of the chain, or None when it is empty."""
    row = (
        await session.execute(
            select(AuditChainLink.position, AuditChainLink.chain_hash, AuditChainLink.sealed_at)
            .order_by(AuditChainLink.position.desc())
            .limit(1)
        )
    ).first()
    return ChainEnd(*row) if row is not None else None


async def unchained(session: AsyncSession, *, limit: int, since: datetime | None, lookback: int | None) -> list[Row]:
    """Up to `limit` committed entries without a link, by `seq`, as plain rows (every column, by name; no ORM
    objects: the sealer runs in the service's event loop): dated `since` or later, and with `lookback` only the
    newest seqs (those above the highest chained seq minus `lookback`)."""
    stmt = select(*AuditEntry.__table__.columns).where(UNCHAINED).order_by(AuditEntry.seq).limit(limit)
    if since is not None:
        stmt = stmt.where(AuditEntry.occurred_at >= since)
    if lookback is not None:
        newest = select(func.max(AuditChainLink.entry_seq)).scalar_subquery()
        stmt = stmt.where(AuditEntry.seq > newest - lookback)
    return list(await session.execute(stmt))


async def add_links(session: AsyncSession, links: list[dict[str, Any]]) -> None:
    """Append links (position, entry_seq, entry_hash, chain_hash, sealed_at) to the chain."""
    await session.execute(AuditChainLink.__table__.insert(), links)


async def add_checkpoint(session: AsyncSession, checkpoint: AuditCheckpoint) -> None:
    session.add(checkpoint)
    await session.flush()


async def checkpoints(session: AsyncSession, *, limit: int) -> list[AuditCheckpoint]:
    """The newest checkpoints first."""
    stmt = select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def add_verification(session: AsyncSession, verification: AuditVerification) -> None:
    session.add(verification)
    await session.flush()


async def last_verification(session: AsyncSession) -> AuditVerification | None:
    return await session.scalar(select(AuditVerification).order_by(AuditVerification.id.desc()).limit(1))


# A page of the chain for a verification: each link with its entry's columns (`e_<column>`; None when the entry is
# gone). Rows are read by index (by name costs several µs a field over millions of entries): PAGE_FIELDS names them.
_PAGE_COLUMNS = (
    AuditChainLink.position,
    AuditChainLink.entry_seq,
    AuditChainLink.entry_hash,
    AuditChainLink.chain_hash,
    *(c.label(f"e_{c.name}") for c in AuditEntry.__table__.columns),
)
PAGE_FIELDS = tuple(c.name for c in _PAGE_COLUMNS)


class ChainReader:
    """Reads for a verification: in the given session, or each read in a short transaction of its own (`sessions`):
    on SQLite every transaction holds the single write lock, so a long one would stop every other request."""

    def __init__(self, session: AsyncSession | None, sessions: async_sessionmaker | None) -> None:
        self.session, self.sessions = session, sessions

    async def _all(self, stmt: Select) -> list[Row]:
        if self.session is not None:
            return list((await self.session.execute(stmt)).all())
        bind = self.sessions.kw["bind"]
        if bind.dialect.name == "sqlite":
            # Not in a session: each of those takes SQLite's write lock at BEGIN, and a verification's scans of the
            # whole log would hold it for seconds. A reader (READER) takes none; WAL readers stop no writer.
            async with bind.connect() as reader:
                await reader.execution_options(**READER)
                return list((await reader.execute(stmt)).all())
        async with self.sessions() as session:
            return list((await session.execute(stmt)).all())

    async def _first(self, stmt: Select) -> Any:
        rows = await self._all(stmt.limit(1))
        return rows[0][0] if rows else None

    async def last_verified_size(self) -> int | None:
        """The size the newest successful verification covered."""
        return await self._first(
            select(AuditVerification.size).where(AuditVerification.ok.is_(True)).order_by(AuditVerification.id.desc())
        )

    async def newest_checkpoint_within(self, size: int) -> str | None:
        """The signed token of the newest non-empty stored checkpoint of at most `size` entries."""
        return await self._first(
            select(AuditCheckpoint.jws)
            .where(AuditCheckpoint.size <= size, AuditCheckpoint.size > 0)
            .order_by(AuditCheckpoint.size.desc(), AuditCheckpoint.id.desc())
        )

    async def stored_checkpoints(self, *, min_size: int) -> list[tuple[int, int, str, str]]:
        """(id, size, head hash, signed token) of every stored checkpoint of at least `min_size` entries, by id."""
        rows = await self._all(
            select(AuditCheckpoint.id, AuditCheckpoint.size, AuditCheckpoint.head_hash, AuditCheckpoint.jws)
            .where(AuditCheckpoint.size >= min_size)
            .order_by(AuditCheckpoint.id)
        )
        return [tuple(r) for r in rows]

    async def chain_hash_at(self, position: int) -> str | None:
        return await self._first(select(AuditChainLink.chain_hash).where(AuditChainLink.position == position))

    async def page(self, start: int, limit: int) -> list[Row]:
        """Up to `limit` links from position `start` on, with their entries (fields: PAGE_FIELDS)."""
        return await self._all(
            select(*_PAGE_COLUMNS)
            .join(AuditEntry, AuditEntry.seq == AuditChainLink.entry_seq, isouter=True)
            .where(AuditChainLink.position >= start)
            .order_by(AuditChainLink.position)
            .limit(limit)
        )

    async def links_from(self, start: int) -> int:
        """How many links the chain holds from position `start` on."""
        return await self._first(select(func.count()).where(AuditChainLink.position >= start)) or 0

    def source(self) -> "ChainSource | None":
        """Where another process reads the chain from (`read_links`), or None (an in-memory SQLite database)."""
        bind = self.session.bind if self.session is not None else self.sessions.kw["bind"]
        url = bind.url
        if url.get_backend_name() == "postgresql":
            return ChainSource("postgresql", url.set(drivername="postgresql").render_as_string(hide_password=False))
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return ChainSource("sqlite", url.database)
        return None

    async def newest_sealed_at(self) -> datetime | None:
        return await self._first(select(AuditChainLink.sealed_at).order_by(AuditChainLink.position.desc()))

    async def first_unchained_before(self, at: datetime) -> int | None:
        """The lowest seq of an unchained entry dated before `at`."""
        return await self._first(
            select(AuditEntry.seq).where(UNCHAINED, AuditEntry.occurred_at < at).order_by(AuditEntry.seq)
        )

    async def unchained_count(self) -> int:
        return await self._first(select(func.count()).select_from(AuditEntry).where(UNCHAINED)) or 0

    async def unchained_summary(self, before: datetime | None) -> tuple[int | None, int]:
        """`first_unchained_before(before)` (None without `before`) and `unchained_count()`: each scans the whole
        log, so at once when each read has a transaction (a connection) of its own."""
        stray = self.first_unchained_before(before) if before is not None else asyncio.sleep(0)
        if self.session is not None:
            return await stray, await self.unchained_count()
        found, count = await asyncio.gather(stray, self.unchained_count())
        return found, count


# ---- reading the chain in another process ---------------------------------------------------------------------
# A long verification reads and hashes ranges of the chain in worker processes, each with its own connection
# straight on the driver (asyncpg, sqlite3): what SQLAlchemy's result handling cost per entry was most of a
# verification's reading. The statement is still the expression below, compiled once per database; the values
# come back as the service's own reads give them (datetimes aware in UTC, UUIDs), but `details` as its stored JSON
# text (`json.loads` gives the value the service reads).


class ChainSource(NamedTuple):
    """How a worker process opens the database: "postgresql" and a DSN, or "sqlite" and a file."""

    dialect: str
    address: str


_RANGE_COLUMNS = (
    AuditChainLink.position,
    AuditChainLink.entry_seq,
    AuditChainLink.entry_hash,
    AuditChainLink.chain_hash,
    *(AuditEntry.__table__.c[name] for name in ("seq", *(n for n in ENTRY_FIELDS))),
)
# The fields of a row `read_links` returns: the link's four, then the entry's (`seq` first, then ENTRY_FIELDS).
RANGE_FIELDS = tuple(("e_" if c.table is AuditEntry.__table__ else "") + c.name for c in _RANGE_COLUMNS)
_RANGE = (
    select(*_RANGE_COLUMNS)
    .join(AuditEntry, AuditEntry.seq == AuditChainLink.entry_seq, isouter=True)
    .where(AuditChainLink.position >= 0, AuditChainLink.position < 1)
    .order_by(AuditChainLink.position)
)
_RANGE_SQL = {
    "postgresql": str(_RANGE.compile(dialect=postgresql.asyncpg.dialect())),
    "sqlite": str(_RANGE.compile(dialect=sqlite.dialect())),
}
_OCCURRED_AT = RANGE_FIELDS.index("e_occurred_at")
_ACCOUNT = RANGE_FIELDS.index("e_actor_account")
_SQLITE_DIALECT = sqlite.dialect()
# SQLAlchemy's own conversions of SQLite's stored text (public type API), so a value reads exactly as the service
# reads it; the common timestamp form is parsed directly (the same fields, without the regular expression).
_SQLITE_TIME = AuditEntry.__table__.c.occurred_at.type.dialect_impl(_SQLITE_DIALECT).result_processor(
    _SQLITE_DIALECT, None
)
_SQLITE_UUID = AuditEntry.__table__.c.actor_account.type.dialect_impl(_SQLITE_DIALECT).result_processor(
    _SQLITE_DIALECT, None
)
_PLAIN_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")
_RANGE_SETTINGS = {
    "application_name": "member-exchange verify-audit",
    "enable_hashjoin": "off",
    "enable_mergejoin": "off",
    "max_parallel_workers_per_gather": "0",
    "jit": "off",
}
_worker: dict[str, Any] = {}  # in a worker process: its event loop and connection, kept between ranges


def _sqlite_time(value: str | None) -> datetime | None:
    if value.__class__ is str and len(value) == 26 and _PLAIN_TIME.fullmatch(value):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return _SQLITE_TIME(value)


def read_links(source: ChainSource, start: int, end: int) -> list:
    """The links at positions `start` to `end - 1`, with their entries (fields: RANGE_FIELDS; the entry's None when
    it is gone), by position. For a worker process: it keeps its connection for the next range."""
    if source.dialect == "sqlite":
        conn = _worker.get("sqlite")
        if conn is None:
            conn = _worker["sqlite"] = sqlite3.connect(Path(source.address).resolve().as_uri() + "?mode=ro", uri=True)
        rows = conn.execute(_RANGE_SQL["sqlite"], (start, end)).fetchall()
        to_time, to_uuid = _sqlite_time, _SQLITE_UUID
        t, a = _OCCURRED_AT, _ACCOUNT
        return [(*r[:t], to_time(r[t]), *r[t + 1 : a], to_uuid(r[a]), *r[a + 1 :]) for r in rows]
    loop = _worker.get("loop")
    if loop is None:
        loop = _worker["loop"] = asyncio.new_event_loop()
    return loop.run_until_complete(_read_links_pg(source.address, start, end))


async def _read_links_pg(dsn: str, start: int, end: int) -> list:
    conn = _worker.get("postgresql")
    if conn is None or conn.is_closed():
        # Text JSON (asyncpg's default for jsonb), datetimes in UTC, UUIDs: what the service reads, but `details`.
        # A range joins its links to their entries one by one (an index lookup each): the planner, not knowing
        # that a range's entries are a narrow band of seqs, would rather scan the whole entries table for a hash
        # join (a second per range of 20,000 over a million entries).
        conn = _worker["postgresql"] = await asyncpg.connect(dsn, server_settings=_RANGE_SETTINGS)
    return await conn.fetch(_RANGE_SQL["postgresql"], start, end)


# ---- reading ------------------------------------------------------------------------------------------------


@dataclass
class EntryFilter:
    """What an auditor narrows the entries to (every field optional)."""

    org: str | None = None
    actor: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    member_ref: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def entries_page(
    session: AsyncSession, *, whole_log: bool, org: str, filters: EntryFilter, after: int | None, limit: int
) -> list[AuditEntry]:
    """Entries in scope that match `filters`, oldest first, after seq `after`."""
    f = filters
    stmt = select(AuditEntry).where(readable(whole_log=whole_log, org=org)).order_by(AuditEntry.seq).limit(limit)
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
    if after is not None:
        stmt = stmt.where(AuditEntry.seq > after)
    return list((await session.execute(stmt)).scalars())
