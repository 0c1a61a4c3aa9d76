"""The audit log in the database: the scope rule (which entries an auditor may read), the append of an entry, which
runs on every request (prepared), the chain's links, checkpoints and verification records, and the reads of a
verification (app/services/audit.py hashes; nothing here does)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Row, Select, exists, func, insert, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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

    async def newest_sealed_at(self) -> datetime | None:
        return await self._first(select(AuditChainLink.sealed_at).order_by(AuditChainLink.position.desc()))

    async def first_unchained_before(self, at: datetime) -> int | None:
        """The lowest seq of an unchained entry dated before `at`."""
        return await self._first(
            select(AuditEntry.seq).where(UNCHAINED, AuditEntry.occurred_at < at).order_by(AuditEntry.seq)
        )

    async def unchained_count(self) -> int:
        return await self._first(select(func.count()).select_from(AuditEntry).where(UNCHAINED)) or 0


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
