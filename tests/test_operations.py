"""Operating it: /metrics as Prometheus reads it, its protection, several workers reporting one view, the alert
rules, and housekeeping that removes only what has expired and says so in the audit log."""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from app.infra.config import settings
from app.infra.db import db
from app.models.account import LoginThrottle
from app.models.idempotency import IdempotencyRecord
from app.models.subscription import Delivery, DeliveryAttempt
from app.services import audit, housekeeping
from tests.exchange import add_member, introduction, pull_all, push, violation
from tests.helpers import assert_problem
from tests.live import ready, serve, stop
from tests.receiver import start_receiver
from tests.test_webhooks import run_worker, subscribe

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus-alerts.yml"
TOKEN = "metrics-" + "x" * 32


@pytest.fixture(autouse=True)
def fresh_figures(monkeypatch):
    """Database figures are recomputed on every scrape here (the cache is for production scrapes)."""
    monkeypatch.setattr(settings, "metrics_cache_seconds", 0)


@pytest.fixture
async def receiver():
    rec, server, task = await start_receiver()
    yield rec
    server.should_exit = True
    await task


def parse(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}, read by prometheus_client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    r = await client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# ---- the endpoint --------------------------------------------------------------------------------------------


async def test_metrics_parse_with_the_prometheus_parser_and_cover_what_operators_watch(client, party):
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    notice = await push(khoi, introduction(card))
    assert (await khoi.get(f"/api/v1/notices/{notice['id']}")).status_code == 200
    r = await client.get("/metrics")
    assert r.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    expected = {
        "mx_http_requests": "counter",
        "mx_http_request_duration_seconds": "histogram",
        "mx_db_pool_connections_in_use": "gauge",
        "mx_db_pool_waiting": "gauge",
        "mx_audit_unchained_entries": "gauge",
        "mx_audit_oldest_unchained_age_seconds": "gauge",
        "mx_webhook_deliveries_pending": "gauge",
        "mx_webhook_oldest_pending_age_seconds": "gauge",
        "mx_webhook_deliveries_retrying": "gauge",
        "mx_webhook_deliveries_given_up": "gauge",
        "mx_notices_undelivered": "gauge",
        "mx_notices_unacknowledged": "gauge",
        "mx_feedback_round_processed_members": "gauge",
        "mx_signing_key_age_seconds": "gauge",
        "mx_housekeeping_removed_rows": "counter",
        "mx_housekeeping_last_success_timestamp_seconds": "gauge",
        "mx_metrics_database_up": "gauge",
    }
    assert {name: families[name].type for name in expected if name in families} == expected
    samples = parse(r.text)
    # Requests by route template, never by raw path: no notice id, no card number in any label.
    assert value(samples, "mx_http_requests_total", route="/api/v1/notices/{notice_id}", method="GET", status="200")
    labels = " ".join(v for (_, pairs) in samples for _, v in pairs)
    assert notice["id"] not in labels and card not in labels
    assert value(samples, "mx_metrics_database_up") == 1
    assert 0 <= value(samples, "mx_signing_key_age_seconds") < 86400 * 365
    # The audit sealer does not run in these tests: what the requests wrote is waiting to be chained.
    assert value(samples, "mx_audit_unchained_entries") >= 3
    assert value(samples, "mx_audit_oldest_unchained_age_seconds") > 0
    async with db.sessions() as session:
        await audit.seal(session=session)
        await session.commit()
    assert value(await scrape(client), "mx_audit_unchained_entries") == 0


async def test_a_push_moves_the_request_counter_the_outbox_and_the_committees_inbox_figures(client, party, receiver):
    ba_dinh = await party("ba_dinh_system")
    sub = await subscribe(ba_dinh, receiver)
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    before = await scrape(client)
    push_route = {"route": "/api/v1/notices", "method": "POST", "status": "201"}

    await push(khoi, violation(card))

    after = await scrape(client)
    requests = "mx_http_requests_total"
    pushes = value(after, requests, **push_route) - value(before, requests, **push_route)
    assert pushes == 1
    timed = {"route": "/api/v1/notices", "method": "POST"}
    name = "mx_http_request_duration_seconds_count"
    assert value(after, name, **timed) == value(before, name, **timed) + 1
    assert value(after, "mx_webhook_deliveries_pending") == value(before, "mx_webhook_deliveries_pending") + 1
    assert value(after, "mx_webhook_deliveries_due") >= 1
    assert value(after, "mx_notices_undelivered", committee="ba-dinh") == 1
    assert value(after, "mx_notices_unacknowledged", committee="ba-dinh") == 0

    # The receiver fails once: the delivery is retrying, counted against its subscription.
    receiver.replies.append((500, {}))
    assert await run_worker() == 1
    failing = await scrape(client)
    assert value(failing, "mx_webhook_deliveries_retrying", subscription=sub["id"], committee="ba-dinh") == 1
    assert value(failing, "mx_webhook_deliveries_pending") == 1

    # Ba Đình pulls: delivered, not yet acknowledged.
    items, _ = await pull_all(ba_dinh)
    assert len(items) == 1
    pulled = await scrape(client)
    assert value(pulled, "mx_notices_undelivered", committee="ba-dinh") == 0
    assert value(pulled, "mx_notices_unacknowledged", committee="ba-dinh") == 1


async def test_metrics_need_the_token_when_one_is_set_and_are_absent_in_production_without_one(client, monkeypatch):
    monkeypatch.setattr(settings, "metrics_token", TOKEN)
    assert_problem(await client.get("/metrics"), 401, "metrics_token_required")
    r = await client.get("/metrics", headers={"Authorization": "Bearer " + TOKEN[:-1] + "y"})
    assert_problem(r, 401, "metrics_token_required")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_problem(await client.get("/metrics", headers={"Authorization": TOKEN}), 401)
    await scrape(client, Authorization=f"Bearer {TOKEN}")

    monkeypatch.setattr(settings, "environment", "production")
    assert_problem(await client.get("/metrics"), 401)
    await scrape(client, Authorization=f"Bearer {TOKEN}")
    monkeypatch.setattr(settings, "metrics_token", "")
    assert_problem(await client.get("/metrics"), 404)
    # The endpoint is the operator's, not part of the committees' API.
    assert "/metrics" not in (await client.get("/openapi.json")).json()["paths"]


@pytest.mark.slow
async def test_two_workers_report_one_view(party):
    """Requests spread over two uvicorn workers; whichever worker answers a scrape reports the sum, and the
    counts of a worker that was killed stay counted."""
    metrics_dir = Path(tempfile.mkdtemp(prefix="mx-metrics-"))
    proc, base = serve(workers=2, MX_METRICS_DIR=str(metrics_dir), MX_DB_POOL_SIZE="3", MX_DB_MAX_OVERFLOW="0")
    try:
        await ready(base, proc)
        sent = 0

        def per_worker() -> dict[str, float]:
            from prometheus_client.multiprocess import MultiProcessCollector

            out = {}
            for path in metrics_dir.glob("counter_*.db"):
                for family in MultiProcessCollector.merge([str(path)]):
                    for s in family.samples:
                        if s.name == "mx_http_requests_total" and s.labels["route"] == "/healthz":
                            out[path.name] = s.value
            return out

        deadline = time.monotonic() + 60
        while len([v for v in per_worker().values() if v]) < 2:
            assert time.monotonic() < deadline, "the requests never reached both workers"

            async def one() -> None:
                async with httpx.AsyncClient(base_url=base) as c:  # a new connection each: any worker may take it
                    assert (await c.get("/healthz")).status_code == 200

            await asyncio.gather(*(one() for _ in range(20)))
            sent += 20
        assert sum(per_worker().values()) == sent

        async def scrape_live() -> dict:
            async with httpx.AsyncClient(base_url=base) as c:
                r = await c.get("/metrics")
                assert r.status_code == 200
                return parse(r.text)

        async def until(check, what: str) -> dict:
            deadline = time.monotonic() + 30
            while True:
                samples = await scrape_live()
                if check(samples):
                    return samples
                watched = {k[0]: v for k, v in samples.items() if k[0] in ("mx_workers", "mx_db_pool_size")}
                assert time.monotonic() < deadline, f"{what}: {watched}"
                await asyncio.sleep(0.3)

        healthz = {"route": "/healthz", "method": "GET", "status": "200"}
        for _ in range(6):  # several scrapes, on new connections, answered by either worker: always the sum
            samples = await scrape_live()
            assert value(samples, "mx_http_requests_total", **healthz) == sent
            assert value(samples, "mx_workers") == 2
        # Each worker samples its own pool; the scrape adds them up.
        await until(lambda s: value(s, "mx_db_pool_size") == 6, "both pools")

        # A worker dies without a goodbye; uvicorn starts another. Its requests stay counted, its live gauges go.
        def workers() -> set[str]:
            return {p.name for p in metrics_dir.glob("worker_*")}

        first = workers()
        assert len(first) == 2
        counts = per_worker()
        killed = int(max(counts, key=counts.get).removeprefix("counter_").removesuffix(".db"))
        os.kill(killed, 9)
        samples = await until(
            lambda s: workers() - first and value(s, "mx_workers") == 2 and value(s, "mx_db_pool_size") == 6,
            "a replacement worker, and the dead one's live gauges gone",
        )
        assert f"worker_{killed}" not in workers()
        assert value(samples, "mx_http_requests_total", **healthz) == sent
    finally:
        stop(proc)
        shutil.rmtree(metrics_dir, ignore_errors=True)


# ---- alert rules ---------------------------------------------------------------------------------------------


async def test_the_example_alert_rules_are_valid_and_use_only_metrics_the_service_exports(client):
    rules = yaml.safe_load(RULES.read_text())
    exported = {f.name for f in text_string_to_metric_families((await client.get("/metrics")).text)}
    exported |= {n + suffix for n in exported for suffix in ("_total", "_count", "_sum", "_bucket")}
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert alerts and all(group["name"] and group["rules"] for group in rules["groups"])
    for rule in alerts:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
        assert rule["alert"] and rule["expr"] and rule["annotations"]["summary"], rule
        assert rule["labels"]["severity"] in ("warning", "critical"), rule
        names = {word for word in _identifiers(rule["expr"]) if word.startswith("mx_")}
        assert names <= exported, (rule["alert"], names - exported)
        assert names or "up{" in rule["expr"], rule
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed: structure checked only")
    result = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _identifiers(expr: str) -> set[str]:
    import re

    return set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))


# ---- housekeeping --------------------------------------------------------------------------------------------


async def _age(model, column, ids, *, by) -> None:
    async with db.sessions() as session:
        await session.execute(update(model).where(ids).values({column: by}))
        await session.commit()


async def _count(model) -> int:
    async with db.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_housekeeping_removes_only_what_has_expired_and_says_so_in_the_audit_log(client, party, receiver):
    khoi = await party("khoi_clerk")
    ba_dinh = await party("ba_dinh_system")
    await subscribe(ba_dinh, receiver)
    # Three pushes with Idempotency-Key (three records, three deliveries), all delivered.
    keys = [f"hk-{uuid.uuid4().hex}" for _ in range(3)]
    for key in keys:
        card = await add_member(khoi, "ba-dinh")
        await push(khoi, violation(card), headers={"Idempotency-Key": key})
    assert await run_worker() == 3
    # Failed logins leave throttle rows (one per username, one for the address).
    for name in ("nobody.one", "nobody.two"):
        r = await client.post("/api/v1/auth/token", data={"grant_type": "password", "username": name, "password": "x"})
        assert r.status_code == 401
    long_ago = datetime.now(UTC) - timedelta(days=settings.delivery_retention_days + 1)
    # Expired: one idempotency record, two delivered deliveries, one username's throttle window.
    await _age(IdempotencyRecord, "expires_at", IdempotencyRecord.key == keys[0], by=datetime.now(UTC) - timedelta(1))
    async with db.sessions() as session:
        old = list((await session.execute(select(Delivery.id).order_by(Delivery.created_at).limit(2))).scalars())
    await _age(Delivery, "next_attempt_at", Delivery.id.in_(old), by=long_ago)
    await _age(Delivery, "delivered_at", Delivery.id.in_(old), by=long_ago)
    await _age(DeliveryAttempt, "at", DeliveryAttempt.delivery_id.in_(old), by=long_ago)
    await _age(LoginThrottle, "window_started_at", LoginThrottle.key == "login:nobody.one", by=long_ago)
    before = await scrape(client)
    counts_before = {m: await _count(m) for m in (IdempotencyRecord, Delivery, DeliveryAttempt, LoginThrottle)}

    removed = await housekeeping.run_once(batch=1)  # one row per table per transaction: the batches are exercised

    assert removed == {"idempotency_keys": 1, "delivery_attempts": 2, "deliveries": 2, "login_throttle": 1}
    assert await _count(IdempotencyRecord) == counts_before[IdempotencyRecord] - 1
    assert await _count(Delivery) == counts_before[Delivery] - 2
    assert await _count(DeliveryAttempt) == counts_before[DeliveryAttempt] - 2
    assert await _count(LoginThrottle) == counts_before[LoginThrottle] - 1
    async with db.sessions() as session:
        left = set((await session.execute(select(IdempotencyRecord.key))).scalars())
        assert left == set(keys[1:])
        assert (await session.scalar(select(Delivery.id).where(Delivery.id.in_(old)))) is None
        assert await session.get(LoginThrottle, "login:nobody.two") is not None
    # Nothing else goes: the notices are all there, and a retry with a live key still replays.
    sent, _ = await pull_all(khoi, "outbox")
    assert len(sent) == 3
    r = await khoi.post("/api/v1/notices", json=violation(card), headers={"Idempotency-Key": keys[2]})
    assert r.status_code == 201 and r.headers["idempotent-replayed"] == "true"

    # The audit log says what was removed: entries whose counts add up, in the run's transactions.
    auditor = await party("khoi_auditor")
    r = await auditor.get("/api/v1/audit/entries", params={"action": housekeeping.ACTION, "limit": 50})
    entries = r.json()["items"]
    assert entries and {e["actor_login"] for e in entries} == {"housekeeping"}
    assert len({e["resource_id"] for e in entries}) == 1  # one run
    totals = {t: sum(e["details"]["removed"][t] for e in entries) for t in housekeeping.TABLES}
    assert totals == removed
    after = await scrape(client)
    for table, n in removed.items():
        grew = value(after, "mx_housekeeping_removed_rows_total", table=table)
        assert grew == value(before, "mx_housekeeping_removed_rows_total", table=table) + n
    assert value(after, "mx_housekeeping_last_success_timestamp_seconds") > time.time() - 60

    # A second run finds nothing: no entry for a run that removed nothing.
    assert await housekeeping.run_once() == dict.fromkeys(housekeeping.TABLES, 0)
    r = await auditor.get("/api/v1/audit/entries", params={"action": housekeeping.ACTION, "limit": 50})
    assert len(r.json()["items"]) == len(entries)


async def test_housekeeping_never_runs_twice_at_once():
    first = asyncio.create_task(housekeeping.run_once())
    second = asyncio.create_task(housekeeping.run_once())
    results = await asyncio.gather(first, second)
    assert sorted(r is None for r in results) == [False, True]
    if db.engine.dialect.name == "postgresql":  # another process holds the lock: this one skips
        async with db.engine.connect() as other:
            assert await other.scalar(select(func.pg_try_advisory_lock(housekeeping._LOCK)))
            try:
                assert await housekeeping.run_once() is None
            finally:
                await other.scalar(select(func.pg_advisory_unlock(housekeeping._LOCK)))


async def test_the_pool_figures_show_connections_in_use_and_callers_waiting(client):
    pool = db.engine.pool
    capacity = pool.size() + pool._max_overflow
    held = [await db.engine.connect() for _ in range(capacity)]
    waiter = asyncio.create_task(db.engine.connect().start())
    try:
        deadline = time.monotonic() + 10
        while True:  # the waiter parks on the pool's queue
            samples = await scrape(client)
            if value(samples, "mx_db_pool_waiting") >= 1:
                break
            assert time.monotonic() < deadline, "nobody seen waiting for a connection"
            await asyncio.sleep(0.05)
        # With every connection held, /metrics does not queue for one: the database figures wait for the next scrape.
        assert value(samples, "mx_db_pool_connections_in_use") >= capacity
        assert value(samples, "mx_db_pool_size") >= capacity
    finally:
        for conn in held:
            await conn.close()
        await (await waiter).close()
    assert value(await scrape(client), "mx_db_pool_waiting") == 0


async def test_the_housekeeping_command_runs_it_once():
    async with db.sessions() as session:
        session.add(
            LoginThrottle(key="addr:192.0.2.1", failures=3, window_started_at=datetime.now(UTC) - timedelta(days=1))
        )
        await session.commit()
    result = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "member-exchange"), "housekeeping"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out["ran"] is True and out["removed"]["login_throttle"] == 1
    async with db.sessions() as session:
        assert await session.get(LoginThrottle, "addr:192.0.2.1") is None
