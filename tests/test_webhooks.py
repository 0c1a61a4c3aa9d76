"""Push delivery: Standard Webhooks to a real receiver on loopback, retries, Retry-After, 410, durability."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text, update

from app.infra.db import db
from app.models.subscription import Delivery
from app.services.webhooks import deliver_due
from tests.conftest import IS_POSTGRES
from tests.exchange import add_member, introduction, push, violation
from tests.helpers import assert_problem
from tests.live import auth_header, ready, serve, stop
from tests.receiver import start_receiver

SUBS = "/api/v1/subscriptions"


@pytest.fixture
async def receiver():
    rec, server, task = await start_receiver()
    yield rec
    server.should_exit = True
    await task


async def subscribe(party, receiver, kinds=()) -> dict:
    r = await party.post(SUBS, json={"url": receiver.url, "kinds": list(kinds)})
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["secret"].startswith("whsec_")
    receiver.secrets.append(sub["secret"])
    return sub


async def run_worker() -> int:
    async with httpx.AsyncClient(timeout=15, follow_redirects=False, trust_env=False) as client:
        return await deliver_due(sessions=db.sessions, client=client)


async def time_passes() -> None:
    """Every pending delivery is due now."""
    async with db.sessions() as s:
        await s.execute(
            update(Delivery)
            .where(Delivery.status == "pending")
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await s.commit()


async def test_a_new_notice_is_delivered_signed_and_thin(party, receiver):
    ba_dinh = await party("ba_dinh_system")
    sub = await subscribe(ba_dinh, receiver)
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    notice = await push(khoi, introduction(card))
    assert await run_worker() == 1
    assert len(receiver.received) == 1 and receiver.rejected == 0
    body = receiver.received[0]["body"]
    assert body["type"] == "notice.created" and body["data"]["notice_id"] == notice["id"]
    assert body["data"]["kind"] == "member.introduced"
    assert card not in str(body) and "Kim Mã" not in str(body), "member data never leaves the API"
    history = (await ba_dinh.get(f"{SUBS}/{sub['id']}/deliveries")).json()["items"]
    assert history[0]["status"] == "succeeded" and history[0]["history"][0]["status_code"] == 204
    # The receiver fetches the notice itself, through the authenticated API.
    assert (await ba_dinh.get(f"/api/v1/notices/{body['data']['notice_id']}")).status_code == 200


async def test_kinds_filter_and_only_the_recipients_subscriptions_are_used(party, receiver):
    ba_dinh = await party("ba_dinh_system")
    await subscribe(ba_dinh, receiver, kinds=["feedback.requested"])
    cau_giay = await party("cau_giay_system")
    await subscribe(cau_giay, receiver)
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    await push(khoi, introduction(card))  # not a kind Ba Đình asked for; Cầu Giấy is not the recipient
    assert await run_worker() == 0 and receiver.received == []


async def test_a_failing_receiver_is_retried_with_backoff_until_it_succeeds(party, receiver):
    ba_dinh = await party("ba_dinh_system")
    sub = await subscribe(ba_dinh, receiver)
    khoi = await party("khoi_clerk")
    await push(khoi, introduction(await add_member(khoi, "ba-dinh")))
    receiver.replies = [(500, {}), (502, {})]
    before = datetime.now(UTC)
    await run_worker()
    history = (await ba_dinh.get(f"{SUBS}/{sub['id']}/deliveries")).json()["items"][0]
    assert history["status"] == "pending" and history["attempts"] == 1
    wait = datetime.fromisoformat(history["next_attempt_at"]) - before
    assert timedelta(seconds=3.9) <= wait <= timedelta(seconds=9), wait  # 5 s ± 20 % jitter, plus slack for the round
    assert await run_worker() == 0, "not due yet"
    await time_passes()
    await run_worker()
    await time_passes()
    await run_worker()
    history = (await ba_dinh.get(f"{SUBS}/{sub['id']}/deliveries")).json()["items"][0]
    assert history["status"] == "succeeded" and [a["status_code"] for a in history["history"]] == [500, 502, 204]
    assert len({r["id"] for r in receiver.received}) == 1, "one event, one webhook-id, three attempts"


async def test_retry_after_is_honoured(party, receiver):
    ba_dinh = await party("ba_dinh_system")
    sub = await subscribe(ba_dinh, receiver)
    khoi = await party("khoi_clerk")
    await push(khoi, introduction(await add_member(khoi, "ba-dinh")))
    receiver.replies = [(429, {"Retry-After": "120"})]
    before = datetime.now(UTC)
    await run_worker()
    history = (await ba_dinh.get(f"{SUBS}/{sub['id']}/deliveries")).json()["items"][0]
    assert datetime.fromisoformat(history["next_attempt_at"]) - before >= timedelta(seconds=119)
    receiver.replies = [(503, {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})]
    await time_passes()
    await run_worker()
    history = (await ba_dinh.get(f"{SUBS}/{sub['id']}/deliveries")).json()["items"][0]
    wait = datetime.fromisoformat(history["next_attempt_at"]) - datetime.now(UTC)
    assert timedelta(hours=23) < wait <= timedelta(hours=24, minutes=1), "a far date is capped at a day"


async def test_the_last_retry_marks_the_delivery_failed(party, receiver, monkeypatch):
    from app.infra.config import settings

    monkeypatch.setattr(settings, "webhook_retry_schedule", [1, 1])
    ba_dinh = await party("ba_dinh_system")
    sub = await subscribe(ba_dinh, receiver)
    khoi = await party("khoi_clerk")
    await push(khoi, introduction(await add_member(khoi, "ba-dinh")))
    receiver.replies = [(500, {})] * 3
    for _ in range(3):
        await run_worker()
        await time_passes()
    history = (await ba_dinh.get(f"{SUBS}/{sub['id']}/deliveries")).json()["items"][0]
    assert history["status"] == "failed" and history["attempts"] == 3
    # The committee asks for it again.
    r = await ba_dinh.post(f"{SUBS}/{sub['id']}/deliveries/{history['id']}/redeliver")
    assert r.status_code == 200 and r.json()["status"] == "pending"
    await run_worker()
    assert (await ba_dinh.get(f"{SUBS}/{sub['id']}/deliveries")).json()["items"][0]["status"] == "succeeded"


async def test_410_disables_the_subscription(party, receiver):
    ba_dinh = await party("ba_dinh_system")
    sub = await subscribe(ba_dinh, receiver)
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    await push(khoi, introduction(card))
    receiver.replies = [(410, {})]
    await run_worker()
    listed = (await ba_dinh.get(SUBS)).json()["items"]
    assert listed[0]["active"] is False and "410" in listed[0]["disabled_reason"]
    await push(khoi, violation(card))
    assert await run_worker() == 0, "a disabled subscription gets nothing new"
    assert (await ba_dinh.get(f"{SUBS}/{sub['id']}/deliveries")).json()["items"][0]["status"] == "failed"


async def test_redirects_are_not_followed(party, receiver):
    ba_dinh = await party("ba_dinh_system")
    sub = await subscribe(ba_dinh, receiver)
    khoi = await party("khoi_clerk")
    await push(khoi, introduction(await add_member(khoi, "ba-dinh")))
    receiver.replies = [(307, {"Location": "http://10.0.0.1/steal"})]
    await run_worker()
    history = (await ba_dinh.get(f"{SUBS}/{sub['id']}/deliveries")).json()["items"][0]
    assert history["status"] == "pending" and history["history"][0]["status_code"] == 307


async def test_rotating_the_secret_signs_with_both_during_the_grace_period(party, receiver):
    ba_dinh = await party("ba_dinh_system")
    sub = await subscribe(ba_dinh, receiver)
    r = await ba_dinh.post(f"{SUBS}/{sub['id']}/rotate-secret")
    assert r.status_code == 200 and r.json()["secret"] != sub["secret"]
    new_secret = r.json()["secret"]
    khoi = await party("khoi_clerk")
    await push(khoi, introduction(await add_member(khoi, "ba-dinh")))
    receiver.secrets = [sub["secret"]]  # a receiver that has not switched yet
    await run_worker()
    assert len(receiver.received) == 1 and len(receiver.received[0]["signatures"]) == 2
    receiver.secrets = [new_secret]  # and one that has
    await push(khoi, introduction(await add_member(khoi, "ba-dinh")))
    await run_worker()
    assert len(receiver.received) == 2


async def test_urls_outside_the_allow_list_and_plain_http_elsewhere_are_refused(party):
    ba_dinh = await party("ba_dinh_system")
    for url, code in [
        ("http://10.0.0.1/hook", "url_not_allowed"),
        ("https://169.254.169.254/latest", "url_not_allowed"),
        ("ftp://127.0.0.1/x", "invalid_url"),
        ("https://user:pw@127.0.0.1/x", "invalid_url"),
        ("http://no-such-host.invalid/x", "url_unresolvable"),
        ("not a url", "invalid_url"),
    ]:
        assert_problem(await ba_dinh.post(SUBS, json={"url": url}), 422, code)


async def test_subscriptions_are_each_committees_own(party, receiver):
    ba_dinh = await party("ba_dinh_system")
    sub = await subscribe(ba_dinh, receiver)
    other = await party("cau_giay_system")
    assert (await other.get(SUBS)).json()["items"] == []
    for call in (
        other.get(f"{SUBS}/{sub['id']}/deliveries"),
        other.delete(f"{SUBS}/{sub['id']}"),
        other.post(f"{SUBS}/{sub['id']}/rotate-secret"),
    ):
        assert_problem(await call, 404, "subscription_not_found")
    assert (await ba_dinh.delete(f"{SUBS}/{sub['id']}")).status_code == 200
    assert (await ba_dinh.get(SUBS)).json()["items"] == []


# ---- with real service processes ----------------------------------------------------------------------------


def _worker_env(worker: bool) -> dict:
    return {"MX_WEBHOOK_WORKER": "true" if worker else "false", "MX_WEBHOOK_POLL_SECONDS": "0.1"}


async def test_nothing_is_lost_when_the_service_stops_after_commit(party, receiver):
    ba_dinh = await party("ba_dinh_system")
    await subscribe(ba_dinh, receiver)
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    proc, base = serve(**_worker_env(False))  # commits notices, sends nothing
    try:
        await ready(base, proc)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            auth = await auth_header(client, "khoi_clerk")
            ids = []
            for _ in range(3):
                r = await client.post("/api/v1/notices", json=violation(card), headers=auth)
                assert r.status_code == 201
                ids.append(r.json()["id"])
    finally:
        stop(proc, kill=True)
    assert receiver.received == []
    proc, base = serve(port=int(base.rsplit(":", 1)[1]), **_worker_env(True))
    try:
        await ready(base, proc)
        await receiver.wait_for(3)
    finally:
        stop(proc)
    assert sorted(r["body"]["data"]["notice_id"] for r in receiver.received) == sorted(ids)


@pytest.mark.skipif(not IS_POSTGRES, reason="several service processes share one PostgreSQL")
async def test_two_service_processes_never_deliver_the_same_event_twice(party, receiver):
    ba_dinh = await party("ba_dinh_system")
    await subscribe(ba_dinh, receiver)
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    services = [serve(**_worker_env(True)) for _ in range(2)]
    clients = [httpx.AsyncClient(base_url=base, timeout=30) for _, base in services]
    try:
        for proc, base in services:
            await ready(base, proc)
        auths = [await auth_header(c, "khoi_clerk") for c in clients]

        async def pusher(i: int) -> None:
            for _ in range(15):
                r = await clients[i].post("/api/v1/notices", json=violation(card), headers=auths[i])
                assert r.status_code == 201

        await asyncio.gather(pusher(0), pusher(1))
        await receiver.wait_for(30)
        await asyncio.sleep(1.5)  # time for any duplicate to show up
    finally:
        for c in clients:
            await c.aclose()
        for proc, _ in services:
            stop(proc)
    assert len(receiver.received) == 30 and max(receiver.hits.values()) == 1
    async with db.sessions() as s:
        attempts = (await s.execute(text("SELECT count(*) FROM delivery_attempts"))).scalar()
    assert attempts == 30
