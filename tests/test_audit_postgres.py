"""PostgreSQL only: the service's role cannot switch off the append-only triggers, and two service processes
writing at once produce one linear, verifiable log."""

import asyncio

import httpx
import pytest
from sqlalchemy import text

from app.infra.db import db
from tests.conftest import IS_POSTGRES
from tests.exchange import add_member, violation
from tests.live import ROOT, auth_header, ready, serve, stop

pytestmark = pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL only")


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


async def test_two_service_processes_writing_at_once_produce_one_linear_verifiable_log(party):
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    services = [serve(MX_AUDIT_SEAL_INTERVAL_SECONDS="0.2") for _ in range(2)]
    clients = [httpx.AsyncClient(base_url=base, timeout=30) for _, base in services]
    try:
        for proc, base in services:
            await ready(base, proc)
        auths = [await auth_header(c, name) for c, name in zip(clients, ("khoi_clerk", "ba_dinh_clerk"), strict=True)]

        async def writer(c: httpx.AsyncClient, auth: dict) -> list[int]:
            statuses = []
            for _ in range(40):
                r = await c.post("/api/v1/notices", json=violation(card), headers=auth)
                statuses.append(r.status_code)
            return statuses

        results = await asyncio.gather(*(writer(c, a) for c, a in zip(clients, auths, strict=True) for _ in range(4)))
        assert all(s == 201 for statuses in results for s in statuses)
        auditor = await auth_header(clients[1], "khoi_auditor")
        report = (await clients[0].get("/api/v1/audit/verify", headers=auditor)).json()
        assert report["ok"] is True and report["unsealed"] == 0, report
    finally:
        for c in clients:
            await c.aclose()
        for proc, _ in services:
            stop(proc)
    async with db.sessions() as s:
        positions = (await s.execute(text("SELECT count(*), min(position), max(position) FROM audit_chain"))).one()
        entries_count = (await s.execute(text("SELECT count(*) FROM audit_entries"))).scalar()
        pushes = (await s.execute(text("SELECT count(*) FROM audit_entries WHERE action = 'notice.push'"))).scalar()
    count, first, last = positions
    assert first == 0 and last == count - 1, "the chain has gaps"
    assert pushes == 320
    assert entries_count - count <= 1  # at most the last verification's own entry is still unsealed
