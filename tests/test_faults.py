"""Faults: a full disk, the database gone mid-load, the service killed while clients push. Nothing acknowledged
is lost, nothing is half-written, retries never duplicate, and the service recovers without a restart."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import db
from app.services import documents as document_service
from app.storage import StorageFull
from tests import files
from tests.exchange import add_member, violation
from tests.helpers import ACCOUNTS, assert_problem
from tests.receiver import free_port

ROOT = Path(__file__).resolve().parent.parent


async def test_a_full_disk_is_507_and_leaves_no_dangling_metadata(party, monkeypatch):
    officer = await party("khoi_officer")

    def full(*_args, **_kwargs):
        raise StorageFull

    monkeypatch.setattr(document_service.store, "put", full)
    r = await officer.post("/api/v1/documents", files={"file": ("a.pdf", files.pdf())})
    assert_problem(r, 507, "storage_full")
    async with db.sessions() as s:
        assert (await s.execute(text("SELECT count(*) FROM documents"))).scalar() == 0


async def test_the_database_gone_mid_load_is_503_with_retry_after_and_recovers_without_restart(party):
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    assert (await khoi.post("/api/v1/notices", json=violation(card))).status_code == 201
    broken = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:9/gone", connect_args={"timeout": 2})
    real = db.replace(broken)
    try:
        results = await asyncio.gather(*(khoi.post("/api/v1/notices", json=violation(card)) for _ in range(8)))
        for r in results:
            assert_problem(r, 503, "database_unavailable")
            assert int(r.headers["retry-after"]) > 0
    finally:
        db.replace(real)
        await broken.dispose()
    assert (await khoi.post("/api/v1/notices", json=violation(card))).status_code == 201
    out = (await khoi.get("/api/v1/notices/outbox")).json()["items"]
    assert len(out) == 2, "nothing was half-written while the database was away"


def _serve(port: int) -> subprocess.Popen:
    env = {**os.environ, "MX_LOG_LEVEL": "WARNING", "MX_WEBHOOK_WORKER": "false"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def _ready(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as c:
        for _ in range(150):
            try:
                if (await c.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("service did not start")


async def test_sigkill_while_32_clients_push_loses_nothing_acknowledged_and_retries_never_duplicate(party):
    khoi = await party("khoi_clerk")
    cards = [await add_member(khoi, "ba-dinh") for _ in range(4)]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(port)
    await _ready(base)
    spec = ACCOUNTS["khoi_clerk"]
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        r = await c.post(
            "/api/v1/auth/token", data={"grant_type": "password", "username": spec.login, "password": spec.secret}
        )
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
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
    await asyncio.sleep(2.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    await asyncio.gather(*clients)
    assert acknowledged, "some pushes were acknowledged before the kill"

    proc = _serve(port)
    try:
        await _ready(base)
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
        proc.terminate()
        proc.wait(timeout=15)
    async with db.sessions() as s:
        notices = (await s.execute(text("SELECT count(*) FROM notices WHERE kind = 'violation.reported'"))).scalar()
        keys = (await s.execute(text("SELECT count(*) FROM idempotency_keys"))).scalar()
    assert notices == len(sent) == keys, "exactly one notice per request, however often it was sent"
