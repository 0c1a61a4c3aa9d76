"""Security hardening: what an attacker holding a committee's credentials must not be able to do."""

import base64
import json

import httpx
import pytest

from tests.helpers import ACCOUNTS, assert_problem


def _cursor(values) -> str:
    raw = json.dumps(values).encode() if not isinstance(values, bytes) else values
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


CRAFTED = [
    [10**30, 1],
    [1, 10**30],
    [-(10**30), 1],
    b"[1e308, 1]",
    b"[1, 1e308]",
    b"[1.5, 1]",
    b"[NaN, 1]",
    b"[Infinity, 1]",
]


@pytest.mark.parametrize("values", CRAFTED, ids=str)
@pytest.mark.parametrize("box", ["inbox", "outbox"])
async def test_a_crafted_notice_cursor_is_400_not_500(party, box, values):
    ba_dinh = await party("ba_dinh_system")
    r = await ba_dinh.get(f"/api/v1/notices/{box}", params={"cursor": _cursor(values)})
    assert_problem(r, 400, "invalid_cursor")


@pytest.mark.parametrize("values", [[10**30], [-(10**30)], b"[1e308]", b"[2.5]", b"[Infinity]"], ids=str)
async def test_a_crafted_audit_cursor_is_400_not_500(party, values):
    auditor = await party("khoi_auditor")
    r = await auditor.get("/api/v1/audit/entries", params={"cursor": _cursor(values)})
    assert_problem(r, 400, "invalid_cursor")


# ---- headers ------------------------------------------------------------------------------------------------


async def test_token_responses_are_never_cached(client):
    spec = ACCOUNTS["ba_dinh_system"]
    ok = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": spec.login, "client_secret": spec.secret},
    )
    refused = await client.post(
        "/api/v1/auth/token", data={"grant_type": "client_credentials", "client_id": spec.login, "client_secret": "x"}
    )
    for r in (ok, refused):
        assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache", r.headers


async def test_every_response_says_nosniff(client, party):
    ba_dinh = await party("ba_dinh_system")
    for r in (
        await client.get("/healthz"),
        await client.get("/api/v1/organizations"),
        await ba_dinh.get("/api/v1/notices/inbox"),
        await ba_dinh.get("/api/v1/notices/00000000-0000-0000-0000-000000000000"),
        await client.get("/api/v1/notices/inbox?x=%00"),
    ):
        assert r.headers.get("x-content-type-options") == "nosniff", (r.status_code, r.headers)


async def test_swagger_ui_may_not_be_framed_and_runs_only_its_own_scripts(client):
    for path in ("/docs", "/docs/oauth2-redirect"):
        r = await client.get(path)
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self' 'sha256-" in csp
        assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
        assert r.headers["x-frame-options"] == "DENY"


async def test_swagger_ui_can_be_turned_off(monkeypatch):
    from app.config import settings
    from app.main import create_app

    monkeypatch.setattr(settings, "docs_enabled", False)
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        assert (await c.get("/docs")).status_code == 404
        assert (await c.get("/docs/static/swagger-ui.css")).status_code == 404
        assert (await c.get("/openapi.json")).status_code == 200, "the reference for district teams stays"


def test_the_service_is_started_without_a_server_header(monkeypatch):
    import argparse

    import uvicorn

    from app import cli

    seen = {}
    monkeypatch.setattr(cli, "cmd_init", lambda args: None)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    cli.cmd_serve(argparse.Namespace(demo=False, host="127.0.0.1", port=0, workers=1))
    assert seen["server_header"] is False
