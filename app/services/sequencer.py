"""Positions for notices: the order in which pulls hand them out, in commit order, without transaction ids.

A notice commits without a position. The sequencer, one at a time per database (a PostgreSQL advisory
transaction lock, scoped to the database; SQLite is single-writer already), numbers the committed notices it finds
without a position: `max(position) + 1, + 2, …` in `seq` order, in batches, in a short transaction of its own.
Because only one sequencer runs at a time and it reads `max(position)` after taking the lock (so after the previous
sequencer committed), positions are gapless and increasing, and a position, once visible, never gets a smaller
neighbour later. Pulls return only positioned notices, ordered by position: a cursor (the last position handed out)
never skips a notice that becomes visible later, and never repeats one.

Who runs it, so that a notice is pullable a few milliseconds after its push answered 201:
- each service process runs one in the background (`run`), woken right after a transaction that inserted notices
  commits in that process (`notices.on_inserted_commit` in app/repositories/notices.py, a SQLAlchemy
  `after_commit` hook), and every `sequencer_interval_seconds` for notices
  written by other means (a process that died between its commit and its wake-up, a restore);
- a pull sequences inline, in its own transaction (whose commit publishes the positions), when this process has
  committed notices the background sequencer has not numbered yet (in tests, where no background task runs; in
  production rarely), with a try-lock on PostgreSQL so that a pull never waits for another sequencer.

A comment round's batch numbers its own notices instead (`number_at_insert`): under the same lock, held from just
before its insert to its commit, it reads `max(position)` and inserts its rows with the next positions, so they
commit numbered (no second write of each row) and the rule above still holds: one numberer at a time, gapless,
increasing. A push that commits meanwhile is numbered by the sequencer right after that commit.

Nothing here depends on transaction ids or on other databases of the server, and a restored database keeps its
positions (they are plain column values).
"""

import asyncio
import logging

from app.infra.config import settings
from app.infra.db import Session, SessionFactory
from app.repositories import locks
from app.repositories import notices as rows

log = logging.getLogger("app.sequencer")

_LOCK = 0x4D58_5345_5155_454E  # advisory lock id ("MXSEQUEN"): one sequencer at a time in this database
BATCH = 1000


async def sequence(session: Session, *, wait: bool = True, batch: int = BATCH) -> int | None:
    """Number one batch in the session's transaction (the caller commits); None when another sequencer holds the
    lock and `wait` is false."""
    if not await locks.for_transaction(session, _LOCK, wait=wait):
        return None
    return await rows.number_unpositioned(session, batch=batch)


async def number_at_insert(session: Session) -> int:
    """For a transaction that inserts many notices and numbers them itself (a comment round's batch): waits for the
    sequencer's lock, holds it until the transaction ends, and returns the first free position; the rows take it
    and the ones after it, in the order inserted, and commit already numbered (nothing to update afterwards). Call
    it just before the insert and commit right after: until then no other notice gets a position."""
    await locks.for_transaction(session, _LOCK, wait=True)
    return await rows.top_position(session) + 1


class Sequencer:
    """The process's sequencer: its wake-up signal and whether it has work it knows of."""

    def __init__(self) -> None:
        self.pending = False  # this process committed notices that may not be numbered yet
        self._wake: asyncio.Event | None = None

    def notify(self) -> None:
        """A transaction of this process committed new notices."""
        self.pending = True
        if self._wake is not None:
            self._wake.set()

    async def catch_up(self, session: Session) -> None:
        """Before a pull, in its transaction: number what this process committed, if the background sequencer has
        not yet. Never waits for another sequencer (it is numbering right now; the pull sees that a moment later)."""
        if not self.pending:
            return
        self.pending = False
        try:
            numbered = await sequence(session, wait=False)
        except Exception:
            self.pending = True
            raise
        if numbered is None or numbered == BATCH:
            self.pending = True  # busy elsewhere, or more to do: the background sequencer (or the next pull) goes on

    async def run_once(self, sessions: SessionFactory) -> int:
        total = 0
        while True:
            async with sessions() as session:
                numbered = await rows.number_unpositioned_locked(session, lock_id=_LOCK, batch=BATCH)
                await session.commit()
            total += numbered or 0
            if (numbered or 0) < BATCH:
                return total

    async def run(self, *, sessions: SessionFactory, stop: asyncio.Event) -> None:
        """Background loop: number new notices as soon as this process commits some, and now and then anyway."""
        self._wake = wake = asyncio.Event()
        try:
            while not stop.is_set():
                wake.clear()
                self.pending = False
                try:
                    await self.run_once(sessions)
                except Exception:
                    self.pending = True  # retried after the interval, not at once (the database may be gone)
                    log.warning("sequencing notices failed; retrying", exc_info=True)
                else:
                    if self.pending:
                        continue
                waiter = asyncio.ensure_future(wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait(
                    {waiter, stopper},
                    timeout=settings.sequencer_interval_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                waiter.cancel()
                stopper.cancel()
        finally:
            self._wake = None


sequencer = Sequencer()


rows.on_inserted_commit(sequencer.notify)
