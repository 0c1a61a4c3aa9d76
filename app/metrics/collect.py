"""What a scrape reads: this process's pool figures, the figures derived from the database (computed at scrape
time, cached for MX_METRICS_CACHE_SECONDS so scrapes cannot load the database), and every worker's files."""

import asyncio
import logging
import time
from datetime import timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.infra.config import settings
from app.infra.db import db
from app.infra.loops import repeat
from app.metrics import DB_POOL_IN_USE, DB_POOL_SIZE, DB_POOL_WAITING, METRICS_DIR, reap_dead_workers
from app.models.account import SigningKey
from app.models.audit import AuditChainLink, AuditEntry
from app.models.base import utcnow
from app.models.feedback import FeedbackRound
from app.models.notice import Notice, NoticeStatus
from app.models.organization import Organization
from app.models.subscription import Delivery, Subscription

log = logging.getLogger("app.metrics")

# Unchained audit entries are looked for above (highest chained entry - window): an entry's transaction may
# commit after later ones were chained, but not by this many. Counting stops at the cap: alerts fire far below.
AUDIT_STRAGGLER_WINDOW = 50_000
AUDIT_COUNT_CAP = 100_000
QUERY_TIMEOUT_SECONDS = 10.0
GIVEN_UP_WINDOW = timedelta(hours=24)


# ---- this process's connection pool ------------------------------------------------------------------------


def _waiting(pool) -> int:
    """Callers waiting for a connection: the getters parked on the async pool's queue (SQLAlchemy's
    AsyncAdaptedQueue keeps an asyncio.Queue; it is created on first use)."""
    queue = getattr(getattr(pool, "_pool", None), "__dict__", {}).get("_queue")
    getters = getattr(queue, "_getters", None) or ()
    return sum(1 for getter in getters if not getter.done())


def _pool_exhausted() -> bool:
    """Every connection is taken: a scrape must not queue for one behind the requests (nor take one from them)."""
    pool = db.engine.pool
    capacity = getattr(pool, "size", lambda: 0)() + max(getattr(pool, "_max_overflow", 0), 0)
    return capacity > 0 and getattr(pool, "checkedout", lambda: 0)() >= capacity


def sample_pool() -> None:
    """Write this worker's pool figures to its metrics file (summed over live workers at scrape time)."""
    pool = db.engine.pool
    size = getattr(pool, "size", lambda: 0)()
    DB_POOL_SIZE.set(size + max(getattr(pool, "_max_overflow", 0), 0))
    DB_POOL_IN_USE.set(getattr(pool, "checkedout", lambda: 0)())
    DB_POOL_WAITING.set(_waiting(pool))


async def run_sampler(*, stop: asyncio.Event, every: float = 5.0) -> None:
    """Background loop of each worker: keep its pool figures current for scrapes answered by another worker."""

    async def step() -> None:
        sample_pool()

    await repeat(step, stop=stop, every=every, log=log, failure="could not sample the connection pool")


# ---- figures from the database -----------------------------------------------------------------------------


def _age(now, then) -> float:
    return max((now - then).total_seconds(), 0.0) if then is not None else 0.0


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


async def _audit(session: AsyncSession, now) -> list[Metric]:
    highest = await session.scalar(select(func.max(AuditChainLink.entry_seq))) or 0
    unchained = (
        select(AuditEntry.seq, AuditEntry.occurred_at)
        .where(
            AuditEntry.seq > max(highest - AUDIT_STRAGGLER_WINDOW, 0),
            ~exists().where(AuditChainLink.entry_seq == AuditEntry.seq),
        )
        .order_by(AuditEntry.seq)
        .limit(AUDIT_COUNT_CAP)
        .subquery()
    )
    count, oldest = (await session.execute(select(func.count(), func.min(unchained.c.occurred_at)))).one()
    lag = _gauge(
        "mx_audit_unchained_entries", f"Audit entries not yet chained by the sealer (counted up to {AUDIT_COUNT_CAP})"
    )
    lag.add_metric([], count)
    age = _gauge("mx_audit_oldest_unchained_age_seconds", "Age of the oldest audit entry not yet chained (0: none)")
    age.add_metric([], _age(now, oldest))
    return [lag, age]


async def _webhooks(session: AsyncSession, now) -> list[Metric]:
    pending, oldest = (
        await session.execute(select(func.count(), func.min(Delivery.created_at)).where(Delivery.status == "pending"))
    ).one()
    due, oldest_due = (
        await session.execute(
            select(func.count(), func.min(Delivery.next_attempt_at)).where(
                Delivery.status == "pending", Delivery.next_attempt_at <= now
            )
        )
    ).one()
    subs = {
        row.id: row.org_code
        for row in await session.execute(
            select(Subscription.id, Subscription.org_code).where(Subscription.deleted_at.is_(None))
        )
    }

    async def per_subscription(*where) -> dict:
        rows = await session.execute(
            select(Delivery.subscription_id, func.count()).where(*where).group_by(Delivery.subscription_id)
        )
        return {row[0]: row[1] for row in rows}

    retrying = await per_subscription(Delivery.status == "pending", Delivery.attempts > 0)
    given_up = await per_subscription(Delivery.status == "failed", Delivery.next_attempt_at >= now - GIVEN_UP_WINDOW)

    out = [
        _gauge("mx_webhook_deliveries_pending", "Webhook deliveries not yet delivered (including those waiting again)"),
        _gauge("mx_webhook_oldest_pending_age_seconds", "Age of the oldest pending webhook delivery (0: none)"),
        _gauge("mx_webhook_deliveries_due", "Pending deliveries whose time has come: the delivery worker's backlog"),
        _gauge("mx_webhook_oldest_due_seconds", "How long the most overdue delivery has been waiting for the worker"),
    ]
    for family, value in zip(out, (pending, _age(now, oldest), due, _age(now, oldest_due)), strict=True):
        family.add_metric([], value)
    labels = ["subscription", "committee"]
    failing = _gauge(
        "mx_webhook_deliveries_retrying", "Pending deliveries whose last attempt failed, by subscription", labels
    )
    failed = _gauge(
        "mx_webhook_deliveries_given_up",
        "Deliveries given up on (retries used up, 410, subscription disabled) in the last 24 hours, by subscription",
        labels,
    )
    for sub_id in sorted(set(subs) | set(retrying) | set(given_up), key=str):
        ids = [str(sub_id), subs.get(sub_id, "")]
        failing.add_metric(ids, retrying.get(sub_id, 0))
        failed.add_metric(ids, given_up.get(sub_id, 0))
    return [*out, failing, failed]


async def _notices(session: AsyncSession, now) -> list[Metric]:
    committees = set((await session.execute(select(Organization.code).where(Organization.side.is_not(None)))).scalars())
    rows = await session.execute(
        select(
            Notice.recipient_org,
            Notice.status,
            func.count(),
            func.min(Notice.created_at),
            func.min(Notice.delivered_at),
        )
        .where(Notice.status.in_([NoticeStatus.sent.value, NoticeStatus.delivered.value]))
        .group_by(Notice.recipient_org, Notice.status)
    )
    counts: dict[tuple[str, str], tuple[int, float]] = {}
    for org, status, count, created, delivered in rows:
        committees.add(org)
        since = created if status == NoticeStatus.sent.value else delivered
        counts[(org, status)] = (count, _age(now, since))
    undelivered = _gauge(
        "mx_notices_undelivered", "Notices the recipient committee has not pulled yet, by committee", ["committee"]
    )
    undelivered_age = _gauge(
        "mx_notices_oldest_undelivered_age_seconds",
        "Age of the oldest notice not pulled yet, by committee",
        ["committee"],
    )
    unacked = _gauge(
        "mx_notices_unacknowledged", "Notices pulled but not acknowledged, by recipient committee", ["committee"]
    )
    unacked_age = _gauge(
        "mx_notices_oldest_unacknowledged_age_seconds",
        "Time since the oldest unacknowledged notice was delivered, by committee",
        ["committee"],
    )
    for org in sorted(committees):
        for count_family, age_family, status in (
            (undelivered, undelivered_age, NoticeStatus.sent.value),
            (unacked, unacked_age, NoticeStatus.delivered.value),
        ):
            count, age = counts.get((org, status), (0, 0.0))
            count_family.add_metric([org], count)
            age_family.add_metric([org], age)
    return [undelivered, undelivered_age, unacked, unacked_age]


async def _rounds(session: AsyncSession, now) -> list[Metric]:
    by_status = _gauge("mx_feedback_rounds", "Comment rounds by status (running, completed, failed)", ["status"])
    stmt = select(FeedbackRound.status, func.count()).group_by(FeedbackRound.status)
    found = {row[0]: row[1] for row in await session.execute(stmt)}
    for status in sorted({"running", "completed", "failed", *found}):
        by_status.add_metric([status], found.get(status, 0))
    labels = ["round", "year"]
    processed = _gauge("mx_feedback_round_processed_members", "A running round: members looked at so far", labels)
    requested = _gauge("mx_feedback_round_requests_created", "A running round: comment requests created so far", labels)
    skipped = _gauge("mx_feedback_round_skipped_members", "A running round: members skipped so far", labels)
    stalled = _gauge(
        "mx_feedback_round_last_progress_age_seconds", "A running round: time since its last batch was written", labels
    )
    running = await session.execute(
        select(
            FeedbackRound.id,
            FeedbackRound.year,
            FeedbackRound.processed,
            FeedbackRound.requested,
            FeedbackRound.skipped,
            FeedbackRound.updated_at,
        ).where(FeedbackRound.status == "running")
    )
    for row in running:
        ids = [str(row.id), str(row.year)]
        processed.add_metric(ids, row.processed)
        requested.add_metric(ids, row.requested)
        skipped.add_metric(ids, row.skipped)
        stalled.add_metric(ids, _age(now, row.updated_at))
    return [by_status, processed, requested, skipped, stalled]


async def _signing_key(session: AsyncSession, now) -> list[Metric]:
    newest = await session.scalar(select(func.max(SigningKey.created_at)).where(SigningKey.retired_at.is_(None)))
    age = _gauge("mx_signing_key_age_seconds", "Age of the newest signing key in use (rotate with `rotate-keys`)")
    age.add_metric([], _age(now, newest))
    return [age]


async def query_database() -> list[Metric]:
    """Every figure derived from the database, in one short read-only session."""
    now = utcnow()
    async with db.sessions() as session:
        families: list[Metric] = []
        for part in (_audit, _webhooks, _notices, _rounds, _signing_key):
            families.extend(await part(session, now))
        await session.rollback()
    return families


class DatabaseFigures:
    """The database-derived families, recomputed at most once per MX_METRICS_CACHE_SECONDS per process; concurrent
    scrapes wait for one computation instead of starting their own; while the pool is exhausted the previous
    figures stay."""

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self._families: list[Metric] = []
        self._at = float("-inf")

    def invalidate(self) -> None:
        self._at = float("-inf")

    async def current(self) -> list[Metric]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if time.monotonic() - self._at >= settings.metrics_cache_seconds and not _pool_exhausted():
                started = time.monotonic()
                up = _gauge("mx_metrics_database_up", "1 when the last database figures could be read, else 0")
                took = _gauge("mx_metrics_database_query_seconds", "How long reading the database figures took")
                try:
                    families = await asyncio.wait_for(query_database(), timeout=QUERY_TIMEOUT_SECONDS)
                    up.add_metric([], 1)
                except Exception:
                    log.warning("could not read the database figures for /metrics", exc_info=True)
                    families = []
                    up.add_metric([], 0)
                took.add_metric([], time.monotonic() - started)
                self._families, self._at = [*families, up, took], time.monotonic()
            return self._families


database_figures = DatabaseFigures()


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self):
        return iter(self.families)


def render(families: list[Metric]) -> bytes:
    """The exposition text: every worker's files merged, plus the database figures (file IO: run it in a thread)."""
    reap_dead_workers()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(METRICS_DIR))
    registry.register(_Families(families))
    return generate_latest(registry)
