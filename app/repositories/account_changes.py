"""Changes to accounts and committees, as PostgreSQL announces them, and as this process's transactions make them.

The database announces every change that can alter what a request knows of its caller (migration
0012_account_cache): a trigger on `accounts` sends `NOTIFY mx_accounts, '<account id>'`, a trigger on
`organizations` sends `'*'` (a committee's side, operator flag or end date concern all its accounts). PostgreSQL
delivers a notification when the transaction commits, to every connection listening, in commit order, and only once
the change is visible to a new snapshot. `listen` opens the dedicated connection that listens (app/services/
account_cache.py keeps the cache it invalidates). SQLite announces nothing (and has nothing to listen with).

`committed_changes` says which accounts a committed transaction of this session changed (ORM changes, tracked at
flush), so that the request that made them can wait until this process has heard of them.
"""

import asyncio
import os
import select
import uuid
from collections.abc import Callable

import asyncpg
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.infra.db import db
from app.models.account import Account
from app.models.organization import Organization

CHANNEL = "mx_accounts"
EVERY_ACCOUNT = "*"  # the payload of a committee's change: every cached account may be affected

_CHANGED = "mx_accounts_changed"  # session.info: what this transaction changed so far
_COMMITTED = "mx_accounts_committed"  # session.info: what its committed transactions changed


class Listener:
    """The dedicated connection listening on CHANNEL."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.lost = asyncio.Event()  # the connection ended (the server closed it, the network broke, `close`)
        conn.add_termination_listener(lambda _conn: self.lost.set())

    @property
    def backend_pid(self) -> int:
        return self._conn.get_server_pid()

    def has_unread(self) -> bool:
        """Whether data the server sent waits unread on the connection (a notification this process has not taken
        in yet). A check without a round trip: one system call on the socket."""
        transport = getattr(self._conn, "_transport", None)  # asyncpg offers no public accessor
        if transport is None or transport.is_closing():
            return True  # lost or being lost: nothing it held can be trusted
        try:
            sock = transport.get_extra_info("socket")
            readable, _, _ = select.select([sock.fileno()], [], [], 0)
        except (AttributeError, OSError, ValueError):
            return True
        return bool(readable)

    async def ping(self, seconds: float) -> None:
        """One round trip within `seconds`: a connection the network dropped silently is found out here (raises)."""
        await self._conn.fetchval("SELECT 1", timeout=seconds)

    async def close(self) -> None:
        self.lost.set()
        try:
            await asyncio.wait_for(self._conn.close(), timeout=2)
        except (TimeoutError, OSError, asyncpg.InterfaceError, asyncpg.PostgresError):
            self._conn.terminate()


async def listen(on_change: Callable[[str], None]) -> Listener | None:
    """Listen for changes on a connection of its own: `on_change(payload)` for each notification, in the order
    PostgreSQL delivers them. None on SQLite."""
    conn = await db.dedicated_connection(f"member-exchange listener {os.getpid()}")
    if conn is None:
        return None
    try:
        listener = Listener(conn)
        await conn.add_listener(CHANNEL, lambda _conn, _pid, _channel, payload: on_change(payload))
    except BaseException:
        conn.terminate()
        raise
    return listener


def committed_changes(session) -> set[str]:
    """The account ids (and EVERY_ACCOUNT for a committee) that this session's committed transactions changed or
    deleted, since the last call."""
    return session.info.pop(_COMMITTED, None) or set()


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context) -> None:
    changed: set[str] | None = None
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, Account | Organization) and (obj in session.deleted or session.is_modified(obj)):
            if changed is None:
                changed = session.info.setdefault(_CHANGED, set())
            changed.add(str(obj.id) if isinstance(obj, Account) else EVERY_ACCOUNT)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    changed = session.info.pop(_CHANGED, None)
    if changed:
        session.info.setdefault(_COMMITTED, set()).update(changed)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)


def parse(payload: str) -> uuid.UUID | None:
    """The account a notification names; None for EVERY_ACCOUNT (or anything unexpected: treated the same)."""
    try:
        return uuid.UUID(payload)
    except ValueError:
        return None
