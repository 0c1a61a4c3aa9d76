"""Test harness: a fresh database per run (SQLite file, or a new PostgreSQL database when TEST_DATABASE_URL
points at a server), built by `alembic upgrade head`; every test starts from the same clean state; clients
talk to the app over HTTP through httpx's ASGI transport."""

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

_tmp = Path(tempfile.mkdtemp(prefix="mx-test-"))
_server_url = os.environ.get("TEST_DATABASE_URL", "").strip()
_pg_dbname = None

if _server_url.startswith("postgres"):
    import asyncpg

    _pg_dbname = f"mx_test_{uuid.uuid4().hex[:12]}"
    _admin_dsn = _server_url.replace("postgresql+asyncpg://", "postgresql://")

    async def _create_db() -> None:
        conn = await asyncpg.connect(_admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{_pg_dbname}"')
        finally:
            await conn.close()

    asyncio.run(_create_db())
    base, _, _ = _admin_dsn.rpartition("/")
    os.environ["MX_DATABASE_URL"] = f"{base}/{_pg_dbname}"
else:
    os.environ["MX_DATABASE_URL"] = f"sqlite:///{_tmp / 'test.db'}"

os.environ.update(
    {
        "MX_ENVIRONMENT": "test",
        "MX_DATA_DIR": str(_tmp),
        "MX_PASSWORD_HASH_TIME_COST": "1",
        "MX_PASSWORD_HASH_MEMORY_KIB": "64",
        "MX_LOG_LEVEL": "WARNING",
        "MX_DB_POOL_SIZE": "5",
        "MX_DB_MAX_OVERFLOW": "10",
    }
)

import httpx  # noqa: E402
from sqlalchemy import MetaData, Table, delete, event, insert, select, text, update  # noqa: E402

from alembic import command  # noqa: E402
from app.cli import alembic_config  # noqa: E402
from app.infra.config import settings  # noqa: E402
from app.infra.db import db  # noqa: E402
from app.infra.security import keystore, verified_tokens  # noqa: E402
from app.main import app  # noqa: E402
from app.services.keys import ensure_signing_key  # noqa: E402
from app.services.organizations import load_registry  # noqa: E402
from tests.helpers import ACCOUNTS, Party  # noqa: E402

IS_POSTGRES = _pg_dbname is not None

# What every test starts from: the registry, the signing keys and the base accounts, as they were after the
# session's setup. Every other table of the database (its own list, so a new table is never forgotten) is emptied
# after each test; rows a test added to these are deleted and rows it changed are put back.
_KEPT_TABLES = ("organizations", "signing_keys", "accounts")
_NEVER_TOUCHED = ("alembic_version",)


class _Baseline:
    """The database's tables (children first) and the kept tables' rows as the session's setup left them."""

    def __init__(self) -> None:
        self.tables: list[Table] = []
        self.rows: dict[str, dict[tuple, dict]] = {}

    async def capture(self, session) -> None:
        meta = MetaData()
        await session.run_sync(lambda s: meta.reflect(bind=s.connection()))
        self.tables = [t for t in reversed(meta.sorted_tables) if t.name not in _NEVER_TOUCHED]
        assert {t.name for t in self.tables} >= set(_KEPT_TABLES)
        self.rows = {name: await self._rows(session, name) for name in _KEPT_TABLES}

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)

    async def _rows(self, session, name: str) -> dict[tuple, dict]:
        table = self.table(name)
        pk = [c.name for c in table.primary_key.columns]
        return {tuple(r[c] for c in pk): dict(r) for r in (await session.execute(select(table))).mappings()}

    async def restore(self, session) -> None:
        for table in self.tables:
            if table.name not in _KEPT_TABLES:
                await session.execute(delete(table))
        for name in reversed(_KEPT_TABLES):  # children first
            table, kept = self.table(name), self.rows[name]
            pk = [table.c[c.name] for c in table.primary_key.columns]
            now = await self._rows(session, name)
            # Changed rows first: a row a test added (a committee a registry edition created) may be named by one it
            # changed (the retired committee's successor), until that is put back.
            for key, row in now.items():
                if key in kept and row != kept[key]:
                    where = [col == value for col, value in zip(pk, key, strict=True)]
                    await session.execute(update(table).where(*where).values(kept[key]))
            added = [key for key in now if key not in kept]
            # Added rows may name each other (a committee retired into a newer one): unlink them, then delete.
            links = {
                fk.parent.name: None for fk in table.foreign_keys if fk.column.table is table and fk.parent.nullable
            }
            for key in added:
                where = [col == value for col, value in zip(pk, key, strict=True)]
                if links:
                    await session.execute(update(table).where(*where).values(links))
            for key in added:
                where = [col == value for col, value in zip(pk, key, strict=True)]
                await session.execute(delete(table).where(*where))
            missing = [row for key, row in kept.items() if key not in now]
            if missing:
                await session.execute(insert(table), missing)


_baseline = _Baseline()


def pytest_report_header(config) -> str:
    return f"database: {'PostgreSQL ' + _pg_dbname if IS_POSTGRES else 'SQLite ' + str(_tmp / 'test.db')}"


@pytest.fixture(scope="session", autouse=True)
async def database() -> AsyncIterator[None]:
    """Migrate a fresh database once per run and load the registry, a key and the base accounts."""
    await asyncio.to_thread(command.upgrade, alembic_config(), "head")
    async with db.sessions() as session:
        await load_registry(session=session)
        await ensure_signing_key(session=session)
        from tests.helpers import ensure_test_accounts

        await ensure_test_accounts(session)
        await session.commit()
        await keystore.load(session)
        await _baseline.capture(session)
    yield
    await db.engine.dispose()
    if IS_POSTGRES:
        conn = await asyncpg.connect(_admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{_pg_dbname}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(autouse=True)
async def clean_state(database) -> AsyncIterator[None]:
    """Each test starts from the registry, the signing keys and the base accounts only."""
    yield
    verified_tokens.clear()
    shutil.rmtree(settings.spool_dir, ignore_errors=True)
    async with db.sessions() as session:
        if IS_POSTGRES:  # the audit tables' append-only triggers do not fire for replication sessions
            await session.execute(text("SET LOCAL session_replication_role = replica"))
        await _baseline.restore(session)
        await session.commit()
        await keystore.load(session)


class DatabaseOutage:
    """The database goes away: new connections are refused and the pooled ones are gone. `end()` brings it back;
    nothing else is done for the service, which must find its way back by itself (same engine, same pool)."""

    def __init__(self) -> None:
        self.engine = db.engine
        self.active = False

    @staticmethod
    def _refuse(*_args) -> None:
        raise ConnectionRefusedError(111, "Connection refused (the test's database outage)")

    async def begin(self) -> None:
        event.listen(self.engine.sync_engine, "do_connect", self._refuse)
        self.active = True
        await self.engine.dispose()  # the connections the pool held died with the server

    def end(self) -> None:
        if self.active:
            event.remove(self.engine.sync_engine, "do_connect", self._refuse)
            self.active = False


@pytest.fixture
async def database_outage() -> AsyncIterator[DatabaseOutage]:
    """`await database_outage.begin()` ... `database_outage.end()`; ended after the test in any case."""
    outage = DatabaseOutage()
    try:
        yield outage
    finally:
        outage.end()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def party(client) -> "PartyFactory":
    """`await party("ba_dinh_clerk")` → a Party with a fresh bearer token obtained over HTTP."""
    return PartyFactory(client)


class PartyFactory:
    """Logs in over HTTP once per account and test."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.tokens: dict[str, str] = {}

    async def __call__(self, name: str) -> Party:
        spec = ACCOUNTS[name]
        if name not in self.tokens:
            form = (
                {"grant_type": "password", "username": spec.login, "password": spec.secret}
                if spec.kind == "user"
                else {"grant_type": "client_credentials", "client_id": spec.login, "client_secret": spec.secret}
            )
            r = await self.client.post("/api/v1/auth/token", data=form)
            assert r.status_code == 200, r.text
            self.tokens[name] = r.json()["access_token"]
        return Party(self.client, spec, self.tokens[name])
