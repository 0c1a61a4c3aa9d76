"""Faults: a full disk, the database gone mid-load, the service killed while clients push. Nothing acknowledged
is lost, nothing is half-written, retries never duplicate, and the service recovers without a restart."""

import asyncio
import os
import uuid

import httpx
import pytest
from sqlalchemy import make_url, text

from app.infra.db import db
from app.infra.storage import StorageFull
from app.services import documents as document_service
from tests import files
from tests.conftest import IS_POSTGRES
from tests.exchange import add_member, violation
from tests.helpers import assert_problem
from tests.live import auth_header, ready, serve, stop
from tests.proxy import TcpProxy


async def test_a_full_disk_is_507_and_leaves_no_dangling_metadata(party, monkeypatch):
    officer = await party("khoi_officer")

    def full(*_args, **_kwargs):
        raise StorageFull

    monkeypatch.setattr(document_service.store, "put", full)
    r = await officer.post("/api/v1/documents", files={"file": ("a.pdf", files.pdf())})
    assert_problem(r, 507, "storage_full")
    async with db.sessions() as s:
        assert (await s.execute(text("SELECT count(*) FROM documents"))).scalar() == 0


async def test_the_database_gone_mid_load_is_503_with_retry_after_and_recovers_without_restart(party, database_outage):
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    assert (await khoi.post("/api/v1/notices", json=violation(card))).status_code == 201
    await database_outage.begin()
    results = await asyncio.gather(*(khoi.post("/api/v1/notices", json=violation(card)) for _ in range(8)))
    for r in results:
        assert_problem(r, 503, "database_unavailable")
        assert int(r.headers["retry-after"]) > 0
    database_outage.end()  # the database is back; the service is told nothing
    assert (await khoi.post("/api/v1/notices", json=violation(card))).status_code == 201
    out = (await khoi.get("/api/v1/notices/outbox")).json()["items"]
    assert len(out) == 2, "nothing was half-written while the database was away"


@pytest.mark.slow
async def test_sigkill_while_32_clients_push_loses_nothing_acknowledged_and_retries_never_duplicate(party):
    khoi = await party("khoi_clerk")
    cards = [await add_member(khoi, "ba-dinh") for _ in range(4)]
    proc, base = serve(MX_WEBHOOK_WORKER="false")
    await ready(base, proc)
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        auth = await auth_header(c, "khoi_clerk")
    sent: list[tuple[str, dict]] = []
    acknowledged: dict[str, str] = {}

    async def client(i: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            for j in range(1000):
                key, body = f"kill-{i}-{j}-{uuid.uuid4().hex[:6]}", violation(cards[(i + j) % 4])
                sent.append((key, body))
                try:
                    r = await c.post("/api/v1/notices", json=body, headers={**auth, "Idempotency-Key": key})
                except httpx.TransportError:
                    return  # the service died under this request: its fate is unknown to the client
                if r.status_code == 201:
                    acknowledged[key] = r.json()["id"]

    clients = [asyncio.create_task(client(i)) for i in range(32)]
    for _ in range(300):  # kill in full flow: once pushes are being acknowledged (slow machines take longer)
        if len(acknowledged) >= 40:
            break
        await asyncio.sleep(0.1)
    stop(proc, kill=True)
    await asyncio.gather(*clients)
    assert acknowledged, "some pushes were acknowledged before the kill"

    proc, base = serve(port=int(base.rsplit(":", 1)[1]), MX_WEBHOOK_WORKER="false")
    try:
        await ready(base, proc)
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            # Every acknowledged notice is there.
            for notice_id in acknowledged.values():
                assert (await c.get(f"/api/v1/notices/{notice_id}", headers=auth)).status_code == 200
            # Every request retried with its key: acknowledged ones replay, the others are created once.
            for key, body in sent:
                r = await c.post("/api/v1/notices", json=body, headers={**auth, "Idempotency-Key": key})
                assert r.status_code == 201, r.text
                if key in acknowledged:
                    assert r.json()["id"] == acknowledged[key]
    finally:
        stop(proc)
    async with db.sessions() as s:
        notices = (await s.execute(text("SELECT count(*) FROM notices WHERE kind = 'violation.reported'"))).scalar()
        keys = (await s.execute(text("SELECT count(*) FROM idempotency_keys"))).scalar()
    assert notices == len(sent) == keys, "exactly one notice per request, however often it was sent"


@pytest.mark.skipif(not IS_POSTGRES, reason="a database server to lose")
async def test_postgresql_lost_mid_load_is_503_and_the_same_process_recovers(party):
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    url = make_url(os.environ["MX_DATABASE_URL"])
    proxy = TcpProxy(url.host, url.port or 5432)
    await proxy.start()
    proc, base = serve(
        MX_DATABASE_URL=url.set(host="127.0.0.1", port=proxy.port).render_as_string(False),
        MX_WEBHOOK_WORKER="false",
        MX_DB_POOL_SIZE="4",
    )
    created: list[str] = []
    try:
        await ready(base, proc)
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            auth = await auth_header(c, "khoi_clerk")

            async def push_some(n: int) -> list[httpx.Response]:
                out = []
                for _ in range(n):
                    r = await c.post("/api/v1/notices", json=violation(card), headers=auth)
                    if r.status_code == 201:
                        created.append(r.json()["id"])
                    out.append(r)
                return out

            assert all(r.status_code == 201 for r in await push_some(5))
            await proxy.cut()
            during = await asyncio.gather(*(push_some(3) for _ in range(4)))
            for r in (r for batch in during for r in batch):
                assert_problem(r, 503)
                assert int(r.headers["retry-after"]) > 0
            assert (await c.get("/readyz")).status_code == 503
            await proxy.restore()
            # The same process, not restarted: its pool reconnects by itself.
            for _ in range(50):
                if (await c.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.2)
            assert all(r.status_code == 201 for r in await push_some(5))
    finally:
        await proxy.cut()  # first: stop() blocks this loop, which is also the one running the proxy
        stop(proc)
    async with db.sessions() as s:
        stored = (await s.execute(text("SELECT count(*) FROM notices WHERE kind = 'violation.reported'"))).scalar()
    assert stored == len(created) == 10, "every 201 is stored, and nothing else was half-written"
