"""The caller's account, cached per process on PostgreSQL, and forgotten as soon as the database says it changed.

Every authenticated request needs its caller's enabled account and committee (`accounts.enabled_caller`): one
statement, the same answer thousands of times a minute. This process keeps the answers (account id → CallerRow,
at most `account_cache_size`, each for at most `account_cache_ttl_seconds`) under one condition: its listener
(a dedicated connection doing `LISTEN mx_accounts`, app/repositories/account_changes.py) is connected, and was
connected before the row was read. Triggers on `accounts` and `organizations` notify every listener when a change
commits; the listener drops the account's entry (every entry for a committee's change). So a disabled account, a
rotated secret (tokens_valid_after) or a retired committee (org_valid_to) is seen by the very next request in every
process, as without the cache.

What keeps that true when things go wrong:
- the listener connection is lost (server restart, `pg_terminate_backend`, a broken network): the cache is cleared
  and off, every request reads the database as it did before, until the listener is back; a connection that died
  silently is found by its ping (`account_cache_ping_seconds`), and the TTL bounds whatever else could slip;
- each connection of the listener is a new *generation*; an entry is stored only if the listener was up when its
  read began, is still up in the same generation, and no notification arrived in between (the read may have seen
  the row before the change the notification announces);
- the request that changes an account (or a committee) answers only once this process's listener has heard of its
  own change (`settle`, at most `account_cache_settle_seconds`): PostgreSQL notifies every listener at the same
  commit, so the other processes normally have it too by the time the client can send its next request; and a
  process does not answer from its cache while data waits unread on its listener's connection (a notification its
  event loop has not taken in yet). What is left is the time PostgreSQL takes to send one listener its notification
  after another (milliseconds at most): a change is seen within that, not strictly by the next request.

SQLite: no listener, so no cache: every request reads its caller (in-process, no round trip to save).
"""

import asyncio
import collections
import logging
import time
import uuid
from dataclasses import dataclass

from app.infra.config import settings
from app.infra.db import Session
from app.infra.loops import stopped
from app.metrics import ACCOUNT_CACHE_LISTENING, ACCOUNT_CACHE_LOOKUPS
from app.repositories import account_changes, accounts
from app.repositories.accounts import CallerRow

log = logging.getLogger("app.account_cache")

_HIT = ACCOUNT_CACHE_LOOKUPS.labels("hit")
_MISS = ACCOUNT_CACHE_LOOKUPS.labels("miss")
_OFF = ACCOUNT_CACHE_LOOKUPS.labels("off")
_RECONNECT = 1.0  # seconds before listening again after a loss (doubling, up to 10 s, while it fails)


@dataclass(frozen=True, slots=True)
class Ticket:
    """Taken before a read from the database: the row may be stored only if nothing happened since."""

    generation: int
    heard: int


class AccountCache:
    """Account id → CallerRow for this process, valid only while the listener of its generation is up."""

    def __init__(self, *, size: int, ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self.up = False  # the listener is connected (and listening)
        self.listener: account_changes.Listener | None = None
        self.generation = 0  # one per connection of the listener, and one per loss
        self.heard = 0  # notifications received
        self._rows: collections.OrderedDict[uuid.UUID, tuple[CallerRow, float]] = collections.OrderedDict()
        self._recent: collections.deque[tuple[int, str]] = collections.deque(maxlen=4096)
        self._arrived: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._rows)

    # ---- requests -----------------------------------------------------------------------------------------

    def get(self, account_id: uuid.UUID) -> CallerRow | None:
        """The cached row, if the cache is on, the row is fresh, and no notification waits unread on the listener's
        connection (this process's event loop may not have taken in a change that has already arrived)."""
        if not self.up:
            _OFF.inc()
            return None
        if self.listener is not None and self.listener.has_unread():
            _MISS.inc()
            return None
        entry = self._rows.get(account_id)
        if entry is None or time.monotonic() - entry[1] > self.ttl:
            _MISS.inc()
            return None
        self._rows.move_to_end(account_id)
        _HIT.inc()
        return entry[0]

    def ticket(self) -> Ticket | None:
        """Before reading a row from the database; None while the cache is off."""
        return Ticket(self.generation, self.heard) if self.up else None

    def put(self, account_id: uuid.UUID, row: CallerRow, ticket: Ticket | None) -> None:
        """Keep a row read under `ticket`, unless the listener was lost or anything was notified since."""
        if ticket is None or not self.up or ticket != Ticket(self.generation, self.heard):
            return
        self._rows[account_id] = (row, time.monotonic())
        self._rows.move_to_end(account_id)
        while len(self._rows) > self.size:
            self._rows.popitem(last=False)

    # ---- the listener -------------------------------------------------------------------------------------

    def connected(self) -> None:
        """The listener is listening (LISTEN done): a new generation, starting empty."""
        self.generation += 1
        self._rows.clear()
        self.up = True
        ACCOUNT_CACHE_LISTENING.set(1)

    def lost(self) -> None:
        """The listener is gone: notifications may be missed from now on, so nothing cached can be trusted."""
        self.up = False
        self.generation += 1
        self._rows.clear()
        ACCOUNT_CACHE_LISTENING.set(0)

    def notified(self, payload: str) -> None:
        """A change committed: drop what it concerns (everything for a committee's change)."""
        self.heard += 1
        account_id = account_changes.parse(payload)
        if account_id is None:
            self._rows.clear()
        else:
            self._rows.pop(account_id, None)
        self._recent.append((self.heard, payload))
        if self._arrived is not None:
            self._arrived.set()
            self._arrived = None

    async def settle(self, changes: set[str], *, since: int, within: float) -> bool:
        """Wait until the listener has heard of each of `changes` (notifications after `since`); True when it has,
        False after `within` seconds, or at once while the cache is off (nothing here then depends on hearing it)."""
        deadline = time.monotonic() + within
        waiting = set(changes)
        while self.up:
            waiting -= {payload for heard, payload in self._recent if heard > since}
            if not waiting:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._arrived is None:
                self._arrived = asyncio.Event()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=left)
            except TimeoutError:
                return False
        return False

    async def run(self, *, stop: asyncio.Event) -> None:
        """Background loop: keep the listener connected (reconnecting after a loss), ping it, turn the cache on only
        while it listens."""
        if not settings.account_cache_enabled:
            return
        retry = _RECONNECT
        while not stop.is_set():
            try:
                listener = await account_changes.listen(self.notified)
            except Exception:
                log.warning("account cache off: cannot listen for account changes; retrying", exc_info=True)
                if await stopped(stop, retry):
                    return
                retry = min(retry * 2, 10.0)
                continue
            if listener is None:  # SQLite: nothing to listen to, no cache
                return
            retry = _RECONNECT
            self.listener = listener
            self.connected()
            log.info("account cache on (listener pid %s, generation %s)", listener.backend_pid, self.generation)
            try:
                await self._watch(listener, stop)
            finally:
                self.lost()
                self.listener = None
                await listener.close()
            if stop.is_set():
                return
            log.warning("account cache off: the listener connection was lost; reconnecting in %s s", retry)
            # Not at once: a server that is restarting would only refuse; the requests meanwhile read the database.
            if await stopped(stop, retry):
                return

    async def _watch(self, listener: account_changes.Listener, stop: asyncio.Event) -> None:
        """Until stopped or the connection is lost (the driver says so, or a ping fails)."""
        lost = asyncio.ensure_future(listener.lost.wait())
        halted = asyncio.ensure_future(stop.wait())
        ping: asyncio.Future | None = None
        try:
            while True:
                done, _ = await asyncio.wait(
                    {lost, halted}, timeout=settings.account_cache_ping_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                if done:
                    return
                ping = asyncio.ensure_future(listener.ping(settings.account_cache_ping_seconds))
                done, _ = await asyncio.wait({ping, lost, halted}, return_when=asyncio.FIRST_COMPLETED)
                if ping not in done:  # lost or stopped meanwhile
                    return
                if ping.exception() is not None:
                    log.warning("account cache: the listener did not answer its ping", exc_info=ping.exception())
                    return
        finally:
            for waiting in (lost, halted, ping):
                if waiting is not None and not waiting.done():
                    waiting.cancel()


cache = AccountCache(size=settings.account_cache_size, ttl=settings.account_cache_ttl_seconds)


async def caller(session: Session, account_id: uuid.UUID) -> CallerRow | None:
    """The caller's enabled account and committee: from the cache when it holds it, otherwise from the database."""
    row = cache.get(account_id)
    if row is not None:
        return row
    ticket = cache.ticket()
    row = await accounts.enabled_caller(session, account_id)
    if row is not None:
        cache.put(account_id, row, ticket)
    return row


def mark() -> int:
    """Before a commit that may change accounts: the notifications heard so far (see `settle_committed`)."""
    return cache.heard


async def settle_committed(session: Session, *, since: int) -> None:
    """After a commit: if it changed accounts or committees, wait (bounded) until this process's listener has heard
    of it, so that every process has by the time the answer reaches the client."""
    changes = account_changes.committed_changes(session)
    if changes and cache.up:
        if not await cache.settle(changes, since=since, within=settings.account_cache_settle_seconds):
            log.warning("account cache: a change to %s was not heard of within the wait", sorted(changes))
