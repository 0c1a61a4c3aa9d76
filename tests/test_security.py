"""Security hardening: what an attacker holding a committee's credentials must not be able to do."""

import asyncio
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
    from app.infra.config import settings
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


# ---- logins, throttling, tokens ---------------------------------------------------------------------------

TOKEN = "/api/v1/auth/token"
ORGS = "/api/v1/organizations"


def _from(address: str) -> httpx.AsyncClient:
    from app.main import app

    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def _grant(spec, secret=None) -> dict:
    if spec.kind == "client":
        return {"grant_type": "client_credentials", "client_id": spec.login, "client_secret": secret or spec.secret}
    return {"grant_type": "password", "username": spec.login, "password": secret or spec.secret}


async def test_concurrent_guesses_evaluate_at_most_the_limit(client):
    """14 grants at once, 13 wrong and the right one at index 10: the throttle is reserved before any check."""
    spec = ACCOUNTS["khoi_clerk"]
    forms = [_grant(spec, "wrong-guess") for _ in range(14)]
    forms[10] = _grant(spec)
    responses = await asyncio.gather(*(client.post(TOKEN, data=f) for f in forms))
    statuses = [r.status_code for r in responses]
    evaluated = [s for s in statuses if s in (200, 401)]
    # Wrong secrets use up the five slots for good; only a success gives its own slot back (so at most one more
    # attempt, had the success finished before the others reserved theirs).
    assert statuses.count(401) <= 5 and len(evaluated) <= 6, statuses
    assert set(statuses) <= {200, 401, 429}, statuses


async def test_a_stranger_cannot_lock_the_owner_out_of_its_usual_address(client):
    spec = ACCOUNTS["ba_dinh_system"]
    assert (await client.post(TOKEN, data=_grant(spec))).status_code == 200  # its usual address
    statuses = []
    for i in range(5):  # five addresses, each guessing until it is throttled there
        async with _from(f"203.0.113.{i + 1}") as stranger:
            for _ in range(6):
                statuses.append((await stranger.post(TOKEN, data=_grant(spec, "guess"))).status_code)
    assert statuses.count(401) <= 20 and 429 in statuses, "guessing is slowed"
    r = await client.post(TOKEN, data=_grant(spec))
    assert r.status_code == 200, r.text
    # From an address this client never used, the per-login cap applies while the guessing goes on.
    async with _from("198.51.100.7") as elsewhere:
        assert_problem(await elsewhere.post(TOKEN, data=_grant(spec)), 429, "login_throttled")


async def test_tokens_issued_to_one_account_are_capped(client, monkeypatch):
    from app.infra.config import settings

    monkeypatch.setattr(settings, "login_max_tokens_per_account", 3)
    spec = ACCOUNTS["ba_dinh_system"]
    for _ in range(3):
        assert (await client.post(TOKEN, data=_grant(spec))).status_code == 200
    r = await client.post(TOKEN, data=_grant(spec))
    assert_problem(r, 429, "token_rate_limited")
    assert int(r.headers["retry-after"]) > 0


async def test_logins_do_not_hold_the_event_loop(client, party, monkeypatch):
    """While password checks are in progress, a pull is served: it finishes before any of those logins."""
    import threading
    import time

    from app.infra import security
    from app.services import auth as auth_service

    ba_dinh = await party("ba_dinh_system")
    release, entered = threading.Event(), []
    real = security.verify_secret

    def slow_verify(secret_hash, secret):  # stands for Argon2 at production cost; bounded, never hangs
        entered.append(1)
        release.wait(timeout=3)
        return real(secret_hash, secret)

    monkeypatch.setattr(security, "verify_secret", slow_verify)
    monkeypatch.setattr(auth_service, "verify_secret", slow_verify, raising=False)
    spec = ACCOUNTS["khoi_clerk"]
    finished: list[str] = []

    async def login(i):
        r = await client.post(TOKEN, data=_grant(spec, None if i else "wrong"))
        finished.append(f"login{i}:{r.status_code}")

    logins = [asyncio.create_task(login(i)) for i in range(3)]
    deadline = time.monotonic() + 10
    while len(entered) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    r = await ba_dinh.get("/api/v1/notices/inbox")
    finished.append(f"pull:{r.status_code}")
    release.set()
    await asyncio.gather(*logins)
    assert finished[0] == "pull:200", finished
    assert sorted(finished[1:]) == ["login0:401", "login1:200", "login2:200"], finished


async def test_rotating_a_secret_ends_older_tokens(client, party):
    admin = await party("ba_dinh_admin")
    created = (
        await admin.post("/api/v1/accounts", json={"kind": "client", "org_code": "ba-dinh", "roles": ["clerk"]})
    ).json()
    form = {"grant_type": "client_credentials", "client_id": created["login"]}
    old = (await client.post(TOKEN, data={**form, "client_secret": created["secret"]})).json()["access_token"]
    assert (await client.get(ORGS, headers={"Authorization": f"Bearer {old}"})).status_code == 200
    r = await admin.post(f"/api/v1/accounts/{created['id']}/rotate-secret")
    assert r.status_code == 200, r.text
    new_secret = r.json()["secret"]
    assert new_secret != created["secret"]
    assert_problem(await client.get(ORGS, headers={"Authorization": f"Bearer {old}"}), 401, "token_revoked")
    assert_problem(await client.post(TOKEN, data={**form, "client_secret": created["secret"]}), 401)
    r = await client.post(TOKEN, data={**form, "client_secret": new_secret})
    assert r.status_code == 200, r.text
    fresh = r.json()["access_token"]
    assert (await client.get(ORGS, headers={"Authorization": f"Bearer {fresh}"})).status_code == 200
    # Another committee's admin cannot rotate it.
    other = await party("cau_giay_admin")
    assert_problem(await other.post(f"/api/v1/accounts/{created['id']}/rotate-secret"), 404, "account_not_found")


async def test_the_operator_rotates_a_secret_from_the_command_line(client):
    import subprocess
    import sys

    from sqlalchemy import update

    from app.infra.db import db
    from app.models.account import Account
    from tests.helpers import hash_secret

    spec = ACCOUNTS["cau_giay_system"]
    old = (await client.post(TOKEN, data=_grant(spec))).json()["access_token"]
    # The real console script, in its own process (it has its own event loop and connection pool).
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "from app.cli import main; main()", "rotate-secret", "--login", spec.login],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    try:
        assert out["client_id"] == spec.login and out["client_secret"] and out["client_secret"] != spec.secret
        assert_problem(await client.get(ORGS, headers={"Authorization": f"Bearer {old}"}), 401, "token_revoked")
        r = await client.post(TOKEN, data=_grant(spec, out["client_secret"]))
        assert r.status_code == 200, r.text
    finally:
        async with db.sessions() as s:
            await s.execute(
                update(Account)
                .where(Account.login == spec.login)
                .values(secret_hash=hash_secret(spec.secret), tokens_valid_after=None)
            )
            await s.commit()


# ---- names that belong to other committees ----------------------------------------------------------------


async def test_a_district_admin_cannot_learn_other_committees_logins(party):
    admin = await party("ba_dinh_admin")
    body = {"kind": "user", "org_code": "ba-dinh", "roles": ["clerk"]}
    taken = await admin.post("/api/v1/accounts", json={**body, "username": ACCOUNTS["khoi_auditor"].login})
    free = await admin.post("/api/v1/accounts", json={**body, "username": "no.such.login"})
    assert_problem(taken, 422, "login_prefix_required")
    assert_problem(free, 422, "login_prefix_required")
    assert taken.json()["detail"] == free.json()["detail"], "an existing login looks like any other"
    assert (await admin.post("/api/v1/accounts", json={**body, "username": "ba-dinh.le.van.c"})).status_code == 201


async def test_supplier_key_ids_belong_to_their_committee(party):
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    }
    ba_dinh = await party("ba_dinh_admin")
    cau_giay = await party("cau_giay_admin")
    # Ba Đình takes the id Cầu Giấy will want; Cầu Giấy still registers its own key under it.
    assert (
        await ba_dinh.post("/api/v1/supplier-keys", json={"jwk": {**jwk, "kid": "cau-giay-2027"}})
    ).status_code == 201
    r = await cau_giay.post("/api/v1/supplier-keys", json={"jwk": {**jwk, "kid": "cau-giay-2027"}})
    assert r.status_code == 201, r.text
    assert (await cau_giay.delete("/api/v1/supplier-keys/cau-giay-2027")).json()["org_code"] == "cau-giay"
    ba_dinh_keys = (await (await party("ba_dinh_system")).get("/api/v1/supplier-keys")).json()["items"]
    assert [(k["kid"], k["revoked_at"]) for k in ba_dinh_keys] == [("cau-giay-2027", None)], "its own key is untouched"


# ---- documents that would run or render on the recipient's computer ---------------------------------------

HTA = b'<html><head><hta:application id="x"/><script language="VBScript">CreateObject("WScript.Shell").Run "calc"</script></head></html>'  # noqa: E501
ACTIVE_UPLOADS = [
    ("bien-ban.hta", HTA, "active_content_refused"),
    ("bien-ban.html", b"<!DOCTYPE html><p>Bi\xc3\xaan b\xe1\xba\xa3n</p>", "active_content_refused"),
    ("bien-ban.htm", b"Bien ban", "active_content_refused"),
    ("chay.bat", b"@echo off\r\ndel /q C:\\*\r\n", "active_content_refused"),
    ("chay.cmd", b"echo hi\r\n", "active_content_refused"),
    ("hinh.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "active_content_refused"),
    ("tep.js", b"alert(document.cookie)\n", "active_content_refused"),
    ("tep.vbs", b'MsgBox "x"\n', "active_content_refused"),
    ("tep.ps1", b"Get-ChildItem\n", "active_content_refused"),
    ("tep.exe", b"not really a program\n", "active_content_refused"),
    ("bien-ban.hta.txt", b"Bien ban\n", "active_content_refused"),
    ("bien-ban.pdf", b"<html><body><script>alert(1)</script></body></html>", "active_content_refused"),
    ("ghi-chu.txt", b"Ghi chu\n<script>alert(1)</script>\n", "active_content_refused"),
    ("ghi-chu.txt", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "active_content_refused"),
    ("ghi-chu.txt", b"#!/bin/sh\nrm -rf /\n", "active_content_refused"),
    ("ghi-chu.txt", b'Set s = CreateObject("WScript.Shell")\n', "active_content_refused"),
    ("bien-ban.pdf", "Biên bản họp chi bộ\n".encode(), "extension_mismatch"),
    ("bien-ban", "Biên bản họp chi bộ\n".encode(), "extension_mismatch"),
]


@pytest.mark.parametrize(("name", "content", "code"), ACTIVE_UPLOADS, ids=[n for n, _, _ in ACTIVE_UPLOADS])
async def test_script_markup_and_mislabelled_files_are_refused(party, name, content, code):
    officer = await party("khoi_officer")
    r = await officer.post("/api/v1/documents", files={"file": (name, content, "application/pdf")})
    assert_problem(r, 415, code)


async def test_plain_text_is_accepted_as_txt(party):
    officer = await party("khoi_officer")
    text = "Biên bản: đảng viên sinh hoạt đầy đủ; điểm 9/10 (a < b).\n".encode()
    r = await officer.post("/api/v1/documents", files={"file": ("bien-ban.txt", text, "text/plain")})
    assert r.status_code == 201, r.text
    assert r.json()["media_type"] == "text/plain" and r.json()["file_name"] == "bien-ban.txt"


# ---- a member who moved away ------------------------------------------------------------------------------


async def test_the_old_district_gets_nothing_new_about_a_member_who_moved_away(party):
    from tests.exchange import add_member, info_request, member_body, pull_all, push, violation

    khoi = await party("khoi_officer")
    card = await add_member(khoi, "ba-dinh")
    doc = await khoi.post("/api/v1/documents", files={"file": ("bien-ban.pdf", _pdf())})
    assert doc.status_code == 201, doc.text
    report = await push(khoi, {**violation(card), "document_ids": [doc.json()["id"]]})
    r = await khoi.put(
        f"/api/v1/members/{card}",
        json=member_body("cau-giay", residence_ward="Phường Dịch Vọng", residence_address="Số 3 Trần Thái Tông"),
    )
    assert r.status_code == 200, r.text
    ba_dinh, cau_giay = await party("ba_dinh_system"), await party("cau_giay_system")
    # The old district learns that the member left, and where to, but not the new ward or address.
    moves = {name: (await _move_notice(p, card))["payload"] for name, p in (("old", ba_dinh), ("new", cau_giay))}
    assert moves["old"]["to_org"] == "cau-giay" and "new_ward" not in moves["old"] and "new_address" not in moves["old"]
    assert "Dịch Vọng" not in str(moves["old"]) and "Trần Thái Tông" not in str(moves["old"])
    assert moves["new"]["new_ward"] == "Phường Dịch Vọng" and moves["new"]["new_address"] == "Số 3 Trần Thái Tông"
    # Its history stays readable, but it writes nothing more about the member.
    assert (await ba_dinh.get(f"/api/v1/notices/{report['id']}")).status_code == 200
    question = {k: v for k, v in info_request(card).items() if k != "member_card_no"}
    r = await ba_dinh.post(f"/api/v1/notices/{report['id']}/replies", json=question)
    assert_problem(r, 422, "member_not_in_area")
    # A corrected version of a document about the member does not reach it.
    fixed = await khoi.post(
        f"/api/v1/documents/{doc.json()['id']}/corrections",
        files={"file": ("bien-ban.pdf", _pdf())},
        data={"reason": "Sai ngày"},
    )
    assert fixed.status_code == 201, fixed.text
    assert fixed.json()["correction_notices"] == []
    assert (await ba_dinh.get(f"/api/v1/documents/{doc.json()['id']}/content")).status_code == 200
    assert_problem(await ba_dinh.get(f"/api/v1/documents/{fixed.json()['id']}/content"), 404)
    assert not [n for n in (await pull_all(ba_dinh))[0] if n["kind"] == "notice.corrected"]


async def _move_notice(party, card: str) -> dict:
    """The member.residence_changed addressed to this party, read through the API by its id (the id is looked
    up directly: a pull on PostgreSQL may still hold back fresh notices, issue 13)."""
    from sqlalchemy import select

    from app.infra.db import db
    from app.models.notice import Notice

    async with db.sessions() as s:
        notice_id = await s.scalar(
            select(Notice.id).where(
                Notice.kind == "member.residence_changed",
                Notice.member_card_no == card,
                Notice.recipient_org == party.org,
            )
        )
    r = await party.get(f"/api/v1/notices/{notice_id}")
    assert r.status_code == 200, r.text
    return r.json()


def _pdf() -> bytes:
    from tests import files

    return files.pdf()
