"""The caller's account is cached per process (PostgreSQL), yet a disabled account, a rotated secret, a removed role
or a retired committee stops working at once in every process, also while a process has lost its listener.

Two real service processes share the test database: A is where the admin acts, B is where the victim's token was
just used (so B has the account cached). On SQLite there is no cache and the same story must hold as well."""

import asyncio
import os
import re
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text

from app.infra.db import db
from tests.conftest import IS_POSTGRES
from tests.helpers import ACCOUNTS, assert_problem
from tests.live import auth_header, ready, serve, stop

INBOX = "/api/v1/notices/inbox"


def _service(tmp_path, name: str):
    # Each process its own metrics directory, so that its /metrics shows its own cache.
    return serve(MX_WEBHOOK_WORKER="false", MX_HOUSEKEEPING_ENABLED="false", MX_METRICS_DIR=str(tmp_path / name))


async def _lookups(client: httpx.AsyncClient) -> dict[str, float]:
    """The process's account-cache figures from /metrics: hit, miss, off, and listening."""
    body = (await client.get("/metrics")).text
    found = {k: float(v) for k, v in re.findall(r'mx_account_cache_lookups_total\{result="(\w+)"\} (\S+)', body)}
    listening = re.search(r"^mx_account_cache_listening (\S+)$", body, re.M)
    found["listening"] = float(listening.group(1)) if listening else 0.0
    return found


async def _listener_pids(proc_pid: int) -> list[int]:
    async with db.sessions() as s:
        rows = await s.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = :name"),
            {"name": f"member-exchange listener {proc_pid}"},
        )
        return list(rows.scalars())


async def _until(pred, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await pred()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def _listening(client: httpx.AsyncClient, proc_pid: int) -> bool:
    """B's listener is connected and its cache is on."""

    async def up():
        return await _listener_pids(proc_pid) and (await _lookups(client))["listening"] == 1

    return bool(await _until(up))


async def _account_id(client: httpx.AsyncClient, admin: dict, name: str) -> str:
    spec = ACCOUNTS[name]
    r = await client.get("/api/v1/accounts", params={"org_code": spec.org, "limit": 200}, headers=admin)
    assert r.status_code == 200, r.text
    return next(a["id"] for a in r.json()["items"] if a["login"] == spec.login)


async def _warm(client: httpx.AsyncClient, auth: dict, times: int = 3) -> None:
    for _ in range(times):
        r = await client.get(INBOX, params={"limit": 1}, headers=auth)
        assert r.status_code == 200, r.text


async def test_a_change_made_through_one_process_stops_requests_to_another_as_the_database_says(tmp_path):
    a_proc, a_base = _service(tmp_path, "a")
    b_proc, b_base = _service(tmp_path, "b")
    a = httpx.AsyncClient(base_url=a_base, timeout=30)
    b = httpx.AsyncClient(base_url=b_base, timeout=30)
    try:
        await ready(a_base, a_proc)
        await ready(b_base, b_proc)
        if IS_POSTGRES:
            assert await _listening(a, a_proc.pid) and await _listening(b, b_proc.pid), "the caches did not come on"
        admin = await auth_header(a, "ba_dinh_admin")
        victim = await auth_header(b, "ba_dinh_system")
        rotated = await auth_header(b, "ba_dinh_clerk")
        before = await _lookups(b)
        await _warm(b, victim)
        await _warm(b, rotated)
        after = await _lookups(b)
        if IS_POSTGRES:
            assert after["hit"] - before.get("hit", 0) >= 4, (before, after)  # B answered them from its cache
        else:
            assert after.get("hit", 0) == 0, "no cache on SQLite"

        async def refused(path: str, auth: dict, status: int):
            r = await b.get(path, params={"limit": 1}, headers=auth)
            return r if r.status_code == status else None

        # Disabled through A: B refuses it as soon as PostgreSQL's notification reaches it (normally the very next
        # request; on a loaded machine a few milliseconds later: the bound here is generous, the usual case is 0).
        victim_id = await _account_id(a, admin, "ba_dinh_system")
        assert (await a.post(f"/api/v1/accounts/{victim_id}/disable", headers=admin)).status_code == 200
        assert_problem(await _until(lambda: refused(INBOX, victim, 401), 1.0), 401, "account_disabled")

        # A secret rotated through A: tokens issued before it are refused by B.
        rotated_id = await _account_id(a, admin, "ba_dinh_clerk")
        assert (await a.post(f"/api/v1/accounts/{rotated_id}/rotate-secret", headers=admin)).status_code == 200
        assert_problem(await _until(lambda: refused(INBOX, rotated, 401), 1.0), 401, "token_revoked")

        # A role removed, and a committee retired, by the operator straight in the database (no service process
        # waits for these): B stops honouring them as soon as its listener hears of the change.
        admin_system = await auth_header(b, "cau_giay_admin")
        for _ in range(3):
            r = await b.get("/api/v1/accounts", params={"limit": 1}, headers=admin_system)
            assert r.status_code == 200, r.text
        async with db.sessions() as s:
            await s.execute(
                text("UPDATE accounts SET roles = :roles WHERE login = :login"),
                {"roles": '["clerk"]', "login": ACCOUNTS["cau_giay_admin"].login},
            )
            await s.commit()

        assert_problem(await _until(lambda: refused("/api/v1/accounts", admin_system, 403), 1.0), 403)

        cau_giay = await auth_header(b, "cau_giay_system")
        await _warm(b, cau_giay)
        async with db.sessions() as s:
            today = datetime.now(UTC).date()
            await s.execute(text("UPDATE organizations SET valid_to = :d WHERE code = 'cau-giay'"), {"d": today})
            await s.commit()
        assert_problem(await _until(lambda: refused(INBOX, cau_giay, 401), 1.0), 401, "organization_retired")
    finally:
        await a.aclose()
        await b.aclose()
        stop(a_proc)
        stop(b_proc)


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL only: SQLite has no listener and no cache")
async def test_a_process_that_lost_its_listener_reads_every_caller_until_it_listens_again(tmp_path):
    a_proc, a_base = _service(tmp_path, "a")
    b_proc, b_base = _service(tmp_path, "b")
    a = httpx.AsyncClient(base_url=a_base, timeout=30)
    b = httpx.AsyncClient(base_url=b_base, timeout=30)
    try:
        await ready(a_base, a_proc)
        await ready(b_base, b_proc)
        assert await _listening(a, a_proc.pid) and await _listening(b, b_proc.pid)
        admin = await auth_header(a, "ba_dinh_admin")
        victim = await auth_header(b, "ba_dinh_system")
        await _warm(b, victim)

        # The server cuts the listener's connection: B clears its cache and turns it off until it listens again.
        (old,) = await _listener_pids(b_proc.pid)
        async with db.sessions() as s:
            assert (await s.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": old})).scalar()

        async def noticed():  # off, or already listening again on a new connection (it waits a second)
            return (await _lookups(b))["listening"] == 0 or (await _listener_pids(b_proc.pid)) not in ([], [old])

        assert await _until(noticed, 5.0), "B did not notice that its listener was gone"
        before = await _lookups(b)
        await _warm(b, victim, times=2)
        after = await _lookups(b)
        if after["listening"] == 0:  # not back yet (it waits a second): both went to the database
            assert after.get("hit", 0) == before.get("hit", 0), (before, after)
            assert after["off"] - before.get("off", 0) == 2, (before, after)

        # Off or back with an empty cache: a disabled account is refused at once either way.
        victim_id = await _account_id(a, admin, "ba_dinh_system")
        assert (await a.post(f"/api/v1/accounts/{victim_id}/disable", headers=admin)).status_code == 200
        assert_problem(await b.get(INBOX, headers=victim), 401, "account_disabled")

        # The listener comes back (a new connection), and the cache with it.
        async def back():
            pids = await _listener_pids(b_proc.pid)
            return pids and pids != [old] and (await _lookups(b))["listening"] == 1

        assert await _until(back, 20.0), "the listener did not reconnect"
        other = await auth_header(b, "ba_dinh_clerk")
        before = await _lookups(b)
        await _warm(b, other)
        after = await _lookups(b)
        assert after["hit"] - before.get("hit", 0) >= 2, (before, after)
        other_id = await _account_id(a, admin, "ba_dinh_clerk")
        assert (await a.post(f"/api/v1/accounts/{other_id}/disable", headers=admin)).status_code == 200
        assert_problem(await b.get(INBOX, headers=other), 401, "account_disabled")
    finally:
        await a.aclose()
        await b.aclose()
        stop(a_proc)
        stop(b_proc)


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL only")
async def test_the_triggers_come_and_go_with_their_migration(tmp_path):
    """Up, down, up on a database of its own: the notifying triggers exist only at 0012 and after."""
    import asyncpg

    from alembic import command
    from app.cli import alembic_config

    base, _, _ = os.environ["MX_DATABASE_URL"].rpartition("/")
    name = f"{db.engine.url.database}_mig"
    admin = await asyncpg.connect(f"{base}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        cfg = alembic_config(f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1))

        async def triggers() -> set[str]:
            conn = await asyncpg.connect(f"{base}/{name}")
            try:
                rows = await conn.fetch("SELECT tgname FROM pg_trigger WHERE tgname LIKE '%\\_notify%'")
                return {r["tgname"] for r in rows}
            finally:
                await conn.close()

        await asyncio.to_thread(command.upgrade, cfg, "head")
        expected = {"accounts_notify", "accounts_notify_truncate", "organizations_notify"}
        assert await triggers() == expected
        await asyncio.to_thread(command.downgrade, cfg, "0011_editions")
        assert await triggers() == set()
        await asyncio.to_thread(command.upgrade, cfg, "head")
        assert await triggers() == expected

        conn = await asyncpg.connect(f"{base}/{name}")
        heard: list[str] = []
        try:
            await conn.add_listener("mx_accounts", lambda *args: heard.append(args[3]))
            await conn.execute(
                "INSERT INTO organizations (code, kind, side, operator, name, valid_from, created_at, updated_at) "
                "VALUES ('x', 'district', 'residence', false, 'X', '2014-01-01', now(), now())"
            )
            await conn.execute("UPDATE organizations SET name = 'Y' WHERE code = 'x'")
            await asyncio.sleep(0.2)
            assert heard == ["*"]
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL only: SQLite has no listener and no cache")
async def test_the_request_that_disables_an_account_answers_once_its_own_process_has_dropped_it(party):
    from app.services.account_cache import cache

    stop_listening = asyncio.Event()
    task = asyncio.create_task(cache.run(stop=stop_listening))
    try:

        async def up():
            return cache.up

        assert await _until(up, 5.0)
        admin = await party("ba_dinh_admin")
        victim = await party("ba_dinh_system")
        for _ in range(2):
            assert (await victim.get(INBOX)).status_code == 200
        victim_id = await _account_id(admin.client, {"Authorization": f"Bearer {admin.token}"}, "ba_dinh_system")
        assert cache.get(uuid.UUID(victim_id)) is not None, "the victim's account is cached"
        assert (await admin.post(f"/api/v1/accounts/{victim_id}/disable")).status_code == 200
        assert cache.get(uuid.UUID(victim_id)) is None, "dropped before the answer"
        assert_problem(await victim.get(INBOX), 401, "account_disabled")
    finally:
        stop_listening.set()
        await task


async def test_the_cache_keeps_a_row_only_if_nothing_happened_while_it_was_read():
    """The cache's own rule, which no HTTP timing can show reliably: a row read while a notification arrived, or
    while the listener was lost (or before it came back), is not kept; a committee's change drops everything."""
    from app.repositories.accounts import CallerRow
    from app.services.account_cache import AccountCache

    def row(login: str) -> CallerRow:
        return CallerRow(login, "client", "ba-dinh", ["clerk"], None, "residence", False, None)

    one, two = uuid.uuid4(), uuid.uuid4()
    cache = AccountCache(size=2, ttl=60)
    assert cache.ticket() is None, "off until the listener listens"
    cache.put(one, row("a"), cache.ticket())
    assert cache.get(one) is None

    cache.connected()
    ticket = cache.ticket()
    cache.notified(str(two))  # arrives while the row of `one` is being read: it may be older than the change
    cache.put(one, row("a"), ticket)
    assert cache.get(one) is None
    cache.put(one, row("a"), cache.ticket())
    assert cache.get(one) == row("a")

    ticket = cache.ticket()
    cache.lost()
    cache.connected()  # back, a new generation: what was read under the old one is not kept
    cache.put(two, row("b"), ticket)
    assert cache.get(two) is None and cache.get(one) is None, "a loss clears the cache"

    cache.put(one, row("a"), cache.ticket())
    cache.put(two, row("b"), cache.ticket())
    cache.notified(str(one))
    assert cache.get(one) is None and cache.get(two) == row("b")
    cache.notified("*")
    assert cache.get(two) is None

    for n in range(3):  # bounded: the least recently used goes
        cache.put(uuid.UUID(int=n), row(str(n)), cache.ticket())
    assert len(cache) == 2 and cache.get(uuid.UUID(int=0)) is None

    cache.ttl = 0.05
    cache.put(one, row("a"), cache.ticket())
    await asyncio.sleep(0.1)
    assert cache.get(one) is None, "read again after the TTL"
    assert await cache.settle({str(one)}, since=cache.heard, within=0.05) is False
    heard = cache.heard
    cache.notified(str(one))
    assert await cache.settle({str(one)}, since=heard, within=0.05) is True
