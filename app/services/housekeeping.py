"""Housekeeping: remove rows whose use has ended, so the database does not grow without end.

What it removes: idempotency records past `expires_at`; webhook deliveries finished (succeeded, failed or
cancelled) more than MX_DELIVERY_RETENTION_DAYS ago, with their attempts; login-throttle rows whose window has
ended (they no longer throttle anything). Never the audit log, notices or documents.

Deletes go in batches, each its own short transaction (a large backlog never holds locks for long), and each
transaction that removes something appends an audit entry with the counts per table, so the entry exists
exactly when the deletes do. One run at a time across processes (PostgreSQL advisory lock; in-process lock on
SQLite, whose writers are serialised anyway).
"""

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from app.infra.config import settings
from app.infra.db import Session, db
from app.infra.loops import repeat
from app.metrics import HOUSEKEEPING_DURATION, HOUSEKEEPING_LAST_SUCCESS, HOUSEKEEPING_REMOVED, HOUSEKEEPING_RUNS
from app.models.audit import Outcome
from app.models.base import utcnow
from app.repositories import idempotency, locks, logins, webhooks
from app.services import audit

log = logging.getLogger("app.housekeeping")

_LOCK = 0x4D58_484F_5553_454B  # advisory lock id: one housekeeping run at a time across processes
TABLES = ("idempotency_keys", "delivery_attempts", "deliveries", "login_throttle")
FINISHED = ("succeeded", "failed", "cancelled")
ACTION = "housekeeping.purge"

for _table in TABLES:  # every table's series exists from the start, at 0
    HOUSEKEEPING_REMOVED.labels(_table)
for _outcome in ("completed", "skipped", "failed"):
    HOUSEKEEPING_RUNS.labels(_outcome)

_running = False


@asynccontextmanager
async def _exclusive() -> AsyncIterator[bool]:
    """True when this caller may run now: not already running in this process, and on PostgreSQL holding the lock."""
    global _running
    if _running:
        yield False
        return
    _running = True
    try:
        async with locks.held_while_running(_LOCK) as got:
            yield got
    finally:
        _running = False


async def purge_batch(*, session: Session, now: datetime, batch: int) -> dict[str, int]:
    """Delete up to `batch` expired rows of each kind in the session's transaction; the counts per table."""
    counts = dict.fromkeys(TABLES, 0)
    counts["idempotency_keys"] = await idempotency.purge_expired(session, now=now, batch=batch)
    cutoff = now - timedelta(days=settings.delivery_retention_days)
    counts["delivery_attempts"], counts["deliveries"] = await webhooks.purge_finished(
        session, statuses=FINISHED, cutoff=cutoff, batch=batch
    )
    window_ended = now - timedelta(seconds=settings.login_window_seconds)
    counts["login_throttle"] = await logins.purge_ended(session, window_ended=window_ended, batch=batch)
    return counts


async def run_once(*, batch: int | None = None, max_batches: int | None = None) -> dict[str, int] | None:
    """One housekeeping run (the background job and `member-exchange housekeeping` both call this): the rows removed
    per table, or None when another process is running it right now."""
    batch = batch or settings.housekeeping_batch_size
    max_batches = max_batches or settings.housekeeping_max_batches
    async with _exclusive() as mine:
        if not mine:
            HOUSEKEEPING_RUNS.labels("skipped").inc()
            return None
        started = time.monotonic()
        run_id = str(uuid.uuid4())
        total: Counter[str] = Counter(dict.fromkeys(TABLES, 0))
        try:
            for number in range(1, max_batches + 1):
                async with db.sessions() as session:
                    counts = await purge_batch(session=session, now=utcnow(), batch=batch)
                    if any(counts.values()):
                        await audit.append(
                            session=session,
                            request_id=None,
                            actor_account=None,
                            actor_login="housekeeping",
                            actor_org=None,
                            token_jti=None,
                            action=ACTION,
                            resource_type="housekeeping",
                            resource_id=run_id,
                            member_ref=None,
                            counterpart_org=None,
                            outcome=Outcome.allowed.value,
                            http_status=0,
                            client_address=None,
                            details={"removed": counts, "batch": number},
                        )
                    await session.commit()
                total.update(counts)
                for table, count in counts.items():
                    if count:
                        HOUSEKEEPING_REMOVED.labels(table).inc(count)
                if max(counts["idempotency_keys"], counts["deliveries"], counts["login_throttle"]) < batch:
                    break
        except Exception:
            HOUSEKEEPING_RUNS.labels("failed").inc()
            raise
        HOUSEKEEPING_RUNS.labels("completed").inc()
        HOUSEKEEPING_LAST_SUCCESS.set(time.time())
        HOUSEKEEPING_DURATION.observe(time.monotonic() - started)
        if any(total.values()):
            log.info("housekeeping removed %s", dict(total))
        return dict(total)


async def run_periodically(*, stop: asyncio.Event) -> None:
    """Background loop of a service process: the first run a little after start (workers spread out), then every
    MX_HOUSEKEEPING_INTERVAL_SECONDS; whichever process gets the lock does the work."""
    await repeat(
        run_once,
        stop=stop,
        every=lambda: settings.housekeeping_interval_seconds,
        first_wait=min(settings.housekeeping_interval_seconds, random.uniform(30, 90)),
        log=log,
        failure="housekeeping failed; retrying at the next interval",
    )
