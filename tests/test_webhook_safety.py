"""Webhook URLs an attacker might register, one bad delivery among good ones, and DNS rebinding."""

import socket
import uuid
from ipaddress import ip_network

import pytest
from sqlalchemy import select

from app.infra.config import settings
from app.infra.db import db
from app.models.subscription import Delivery, DeliveryAttempt, Subscription
from tests.exchange import add_member, introduction, push
from tests.helpers import assert_problem
from tests.receiver import start_receiver
from tests.test_webhooks import SUBS, run_worker, subscribe


@pytest.fixture
async def receiver():
    rec, server, task = await start_receiver()
    yield rec
    server.should_exit = True
    await task


BAD_URLS = [
    "http://127.0.0.1:{port}/x\r\n",
    "http://127.0.0.1:{port}/x\n",
    "\thttp://127.0.0.1:{port}/x",
    "http://127.0.0.1:{port}/x\t",
    " http://127.0.0.1:{port}/x",
    "http://127.0.0.1:{port}/a b",
    "http://ⓛocalhost:{port}/x",
    "http://lоcalhost:{port}/x",  # Cyrillic о
    "http://127.0.0.1:99999/x",
    "http://127.0.0.1:80:80/x",
    "http://127.0.0.1:-1/x",
    "http://[::1/x",
    "http://[::1]:{port}/x#frag\x00",
]


@pytest.mark.parametrize("template", BAD_URLS)
async def test_a_webhook_url_with_control_characters_lookalike_host_or_bad_port_is_refused(party, template):
    ba_dinh = await party("ba_dinh_system")
    r = await ba_dinh.post(SUBS, json={"url": template.format(port=8399), "kinds": []})
    assert_problem(r, 422, "invalid_url")
    assert (await ba_dinh.get(SUBS)).json()["items"] == []


async def test_the_normalised_url_is_stored(party, receiver):
    ba_dinh = await party("ba_dinh_system")
    r = await ba_dinh.post(SUBS, json={"url": f"HTTP://LOCALHOST:{receiver.port}/hook", "kinds": []})
    assert r.status_code == 201, r.text
    assert r.json()["url"] == f"http://localhost:{receiver.port}/hook"


async def _insert_subscription(org: str, url: str, secret: str) -> uuid.UUID:
    """A row as an older release may have stored it (the API refuses such URLs now)."""
    async with db.sessions() as s:
        sub = Subscription(org_code=org, url=url, kinds=[], secret=secret, created_by=uuid.uuid4())
        s.add(sub)
        await s.commit()
        return sub.id


async def test_one_broken_delivery_never_blocks_the_others_of_its_batch(party, receiver):
    ba_dinh = await party("ba_dinh_system")
    good = await subscribe(ba_dinh, receiver)
    async with db.sessions() as s:
        sealed = (await s.get(Subscription, uuid.UUID(good["id"]))).secret
    bad_url = await _insert_subscription("ba-dinh", f"http://127.0.0.1:{receiver.port}/x\r\n", sealed)
    bad_secret = await _insert_subscription("ba-dinh", receiver.url, "not-a-sealed-secret")
    khoi = await party("khoi_clerk")
    for _ in range(3):
        await push(khoi, introduction(await add_member(khoi, "ba-dinh")))
    assert await run_worker() == 9
    assert len(receiver.received) == 3, "the healthy subscription got every notice once"
    async with db.sessions() as s:
        rows = (await s.execute(select(Delivery))).scalars().all()
        by_sub = {}
        for d in rows:
            by_sub.setdefault(d.subscription_id, []).append(d)
        assert {d.status for d in by_sub[uuid.UUID(good["id"])]} == {"succeeded"}
        for broken in (bad_url, bad_secret):
            for d in by_sub[broken]:
                assert d.attempts == 1 and d.status == "pending", "recorded against that delivery alone"
        errors = (await s.execute(select(DeliveryAttempt.error).where(DeliveryAttempt.status_code.is_(None)))).all()
        assert len(errors) == 6 and all(e for (e,) in errors)
    assert await run_worker() == 0, "nothing is sent again before its retry is due"
    assert len(receiver.received) == 3


async def test_a_delivery_connects_to_the_address_that_was_checked(party, receiver, monkeypatch):
    """DNS rebinding: the name resolves to an allowed address when checked, then to another one."""
    real = socket.getaddrinfo
    answers = ["127.0.0.1", "127.0.0.1"]  # registration, then the check before the first attempt

    def resolver(host, port, *args, **kwargs):
        if host == "rebind.test":
            address = answers.pop(0) if answers else "127.0.0.2"  # not allowed below; nothing listens there
            return real(address, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    monkeypatch.setitem(settings.__dict__, "webhook_networks", (ip_network("127.0.0.1/32"),))
    ba_dinh = await party("ba_dinh_system")
    r = await ba_dinh.post(SUBS, json={"url": f"http://rebind.test:{receiver.port}/hook", "kinds": []})
    assert r.status_code == 201, r.text
    receiver.secrets.append(r.json()["secret"])
    khoi = await party("khoi_clerk")
    await push(khoi, introduction(await add_member(khoi, "ba-dinh")))
    assert await run_worker() == 1
    assert len(receiver.received) == 1, "sent to the checked address, not to a second lookup's"
    assert receiver.received[0]["host"] == f"rebind.test:{receiver.port}", "the Host header keeps the name"
    history = (await ba_dinh.get(f"{SUBS}/{r.json()['id']}/deliveries")).json()["items"]
    assert history[0]["status"] == "succeeded"
    # The next attempt checks again: the name now points outside the allow-list, and nothing is sent.
    await ba_dinh.post(f"{SUBS}/{r.json()['id']}/deliveries/{history[0]['id']}/redeliver")
    assert await run_worker() == 1
    history = (await ba_dinh.get(f"{SUBS}/{r.json()['id']}/deliveries")).json()["items"]
    assert history[0]["history"][-1]["error"] == "url_not_allowed"
    assert len(receiver.received) == 1
