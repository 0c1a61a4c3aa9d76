"""What every caller relies on: health, readiness, request ids, problem details, limits, the registry."""

import pytest
from sqlalchemy import text

from app.infra.config import Settings
from app.infra.db import db
from tests.conftest import IS_POSTGRES
from tests.helpers import assert_problem


async def test_health_is_open_and_cheap(client):
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def test_readiness_is_503_while_the_database_is_unreachable_and_recovers_by_itself(client, database_outage):
    assert (await client.get("/readyz")).status_code == 200
    await database_outage.begin()
    r = await client.get("/readyz")
    assert r.status_code == 503 and r.json() == {"status": "unavailable", "reason": "database_unavailable"}
    assert int(r.headers["retry-after"]) > 0
    database_outage.end()  # the database is back; the service is told nothing
    assert (await client.get("/readyz")).status_code == 200


@pytest.mark.skipif(not IS_POSTGRES, reason="server connections exist only on PostgreSQL")
async def test_service_recovers_when_the_database_drops_every_connection(client, party):
    caller = await party("ba_dinh_system")
    assert (await caller.get("/api/v1/organizations")).status_code == 200
    async with db.engine.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    # Pooled connections are dead now: the pool drops them (closed ones at checkout, the rest at their first
    # error) and opens new ones, without a restart.
    assert (await client.get("/readyz")).status_code == 200
    assert (await caller.get("/api/v1/organizations")).status_code == 200


async def test_every_response_carries_a_request_id_and_echoes_a_safe_one(client):
    r = await client.get("/healthz")
    assert len(r.headers["x-request-id"]) >= 16
    r = await client.get("/healthz", headers={"X-Request-ID": "district-42.abc"})
    assert r.headers["x-request-id"] == "district-42.abc"
    r = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces"
    r = await client.get("/api/v1/organizations")
    assert r.status_code == 401 and r.headers["x-request-id"]


async def test_unknown_paths_and_methods_are_problem_documents(client, party):
    assert_problem(await client.get("/api/v1/nowhere"), 404, "not_found")
    caller = await party("ba_dinh_system")
    assert_problem(await caller.delete("/api/v1/organizations"), 405, "method_not_allowed")


async def test_an_oversized_body_is_refused_before_it_is_read(client):
    big = b"x" * (2 * 1024 * 1024)
    r = await client.post(
        "/api/v1/auth/token", content=big, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_problem(r, 413, "payload_too_large")


async def test_an_oversized_chunked_body_is_refused_while_streaming(client):
    async def chunks():
        for _ in range(40):
            yield b"y" * 65536

    r = await client.post(
        "/api/v1/auth/token", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_problem(r, 413, "payload_too_large")


async def test_the_registry_lists_the_khoi_and_thirty_districts(party):
    caller = await party("cau_giay_system")
    r = await caller.get("/api/v1/organizations", params={"kind": "district"})
    items = r.json()["items"]
    assert len(items) == 30 and all(o["kind"] == "district" and o["active"] for o in items)
    units = {o["unit"] for o in items}
    assert units == {"quận", "huyện", "thị xã"}
    r = await caller.get("/api/v1/organizations/son-tay")
    assert r.json()["name"] == "Thị ủy Sơn Tây"
    assert_problem(await caller.get("/api/v1/organizations/atlantis"), 404, "organization_not_found")


def test_production_settings_refuse_placeholder_secrets_and_demo_accounts():
    with pytest.raises(ValueError, match="MX_KEY_PASSPHRASE"):
        Settings(environment="production")
    with pytest.raises(ValueError, match="MX_DEMO_ACCOUNTS"):
        Settings(environment="production", key_passphrase="a-real-secret-of-enough-length", demo_accounts=True)
    ok = Settings(environment="production", key_passphrase="a-real-secret-of-enough-length")
    assert ok.environment == "production"


def test_database_urls_get_their_async_driver():
    assert Settings(database_url="postgresql://u@h/db").resolved_database_url == "postgresql+asyncpg://u@h/db"
    assert Settings(database_url="sqlite:///x.db").resolved_database_url == "sqlite+aiosqlite:///x.db"
    assert Settings(database_url="").resolved_database_url.endswith("member-exchange.db")
    with pytest.raises(ValueError):
        _ = Settings(database_url="mysql://h/db").resolved_database_url
