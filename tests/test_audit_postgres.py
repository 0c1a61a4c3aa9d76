"""PostgreSQL only: the service's role cannot switch off the append-only triggers, and two service processes
writing at once produce one linear, verifiable log."""

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from app.db import db
from tests.conftest import IS_POSTGRES
from tests.exchange import add_member, violation
from tests.helpers import ACCOUNTS

pytestmark = pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL only")
ROOT = Path(__file__).resolve().parent.parent


async def test_the_service_role_cannot_disable_or_bypass_the_append_only_triggers(party):
    grants = (ROOT / "deploy" / "postgres-audit-grants.sql").read_text()
    async with db.sessions() as s:
        await s.execute(
            text(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mx_app') "
                "THEN CREATE ROLE mx_app NOLOGIN; END IF; END $$"
            )
        )
        await s.execute(text("GRANT USAGE ON SCHEMA public TO mx_app"))
        # What deploy/postgres-roles.sql's default privileges give the service role, then the audit grants.
        await s.execute(text("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO mx_app"))
        await s.execute(text("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO mx_app"))
        sql = "\n".join(line for line in grants.splitlines() if not line.startswith("--"))
        for statement in filter(None, (part.strip() for part in sql.split(";"))):
            await s.execute(text(statement))
        await s.commit()
    attempts = [
        "ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_no_change",
        "DROP TRIGGER audit_entries_no_change ON audit_entries",
        "SET session_replication_role = replica",
        "UPDATE audit_entries SET http_status = 200",
        "DELETE FROM audit_chain",
        "TRUNCATE audit_checkpoints",
    ]
    for statement in attempts:
        async with db.sessions() as s:
            await s.execute(text("SET ROLE mx_app"))
            with pytest.raises(Exception, match=r"permission denied|must be owner|append-only"):
                await s.execute(text(statement))
            await s.rollback()
    async with db.sessions() as s:  # and it can still append
        await s.execute(text("SET ROLE mx_app"))
        await s.execute(
            text(
                "INSERT INTO audit_entries (occurred_at, action, outcome, http_status, details) "
                "VALUES (now(), 'test.append', 'allowed', 200, '{}')"
            )
        )
        await s.rollback()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(port: int) -> subprocess.Popen:
    env = {**os.environ, "MX_AUDIT_SEAL_INTERVAL_SECONDS": "0.2", "MX_LOG_LEVEL": "WARNING"}
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
        stderr=subprocess.PIPE,
    )


async def _wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode()[-2000:])
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("service did not become ready")


async def test_two_service_processes_writing_at_once_produce_one_linear_verifiable_log(party):
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    ports = [_free_port(), _free_port()]
    procs = [_start(p) for p in ports]
    clients = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}", timeout=30) for p in ports]
    try:
        for c, proc in zip(clients, procs, strict=True):
            await _wait_ready(c, proc)
        specs = [ACCOUNTS["khoi_clerk"], ACCOUNTS["ba_dinh_clerk"]]
        tokens = []
        for c, spec in zip(clients, specs, strict=True):
            r = await c.post(
                "/api/v1/auth/token", data={"grant_type": "password", "username": spec.login, "password": spec.secret}
            )
            tokens.append(r.json()["access_token"])

        async def writer(c: httpx.AsyncClient, token: str) -> list[int]:
            statuses = []
            for _ in range(40):
                r = await c.post("/api/v1/notices", json=violation(card), headers={"Authorization": f"Bearer {token}"})
                statuses.append(r.status_code)
            return statuses

        results = await asyncio.gather(*(writer(c, t) for c, t in zip(clients, tokens, strict=True) for _ in range(4)))
        assert all(s == 201 for statuses in results for s in statuses)
        auditor_spec = ACCOUNTS["khoi_auditor"]
        r = await clients[1].post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": auditor_spec.login, "password": auditor_spec.secret},
        )
        auditor = {"Authorization": f"Bearer {r.json()['access_token']}"}
        report = (await clients[0].get("/api/v1/audit/verify", headers=auditor)).json()
        assert report["ok"] is True and report["unsealed"] == 0, report
    finally:
        for c in clients:
            await c.aclose()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)
    async with db.sessions() as s:
        positions = (await s.execute(text("SELECT count(*), min(position), max(position) FROM audit_chain"))).one()
        entries_count = (await s.execute(text("SELECT count(*) FROM audit_entries"))).scalar()
        pushes = (await s.execute(text("SELECT count(*) FROM audit_entries WHERE action = 'notice.push'"))).scalar()
    count, first, last = positions
    assert first == 0 and last == count - 1, "the chain has gaps"
    assert pushes == 320
    assert entries_count - count <= 1  # at most the last verification's own entry is still unsealed
