"""Every machine `code` the API can answer, each provoked through HTTP as a client would meet it.

The catalogue is read from the application's own source (every `code=`, every error class's `code`, every
status-and-code pair of the handlers and middleware), so a new code fails `test_every_code_has_a_case` until it
gets a case here, or names the test that provokes it (for faults, races and timing that need their own set-up),
or says why no client request can produce it."""

import ast
import importlib.util
import itertools
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from ipaddress import ip_network
from pathlib import Path

import httpx
import pytest
from jwcrypto import jwk

from app.infra.config import settings
from tests import files
from tests import test_registry_editions as editions
from tests.exchange import (
    accepted,
    add_member,
    discipline,
    feedback_given,
    feedback_request,
    info_request,
    introduction,
    member_body,
    push,
    violation,
)
from tests.helpers import ACCOUNTS, assert_problem
from tests.receiver import start_receiver
from tests.test_webhooks import run_worker

NOTICES = "/api/v1/notices"
DOCS = "/api/v1/documents"
SUBS = "/api/v1/subscriptions"
TOKEN = "/api/v1/auth/token"
ROOT = Path(__file__).resolve().parent.parent
_SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def catalogue() -> dict[str, str]:
    """Every problem code in the app's source, with where it is first found."""
    package = Path(importlib.util.find_spec("app").submodule_search_locations[0])
    codes: dict[str, str] = {}

    def add(node, where: str) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SNAKE.match(node.value):
            codes.setdefault(node.value, f"{where}:{node.lineno}")

    def status(node) -> bool:
        return isinstance(node, ast.Constant) and type(node.value) is int and 400 <= node.value < 600

    for path in sorted(package.rglob("*.py")):
        where = str(path.relative_to(package.parent))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg in ("code", "oauth_error"):
                for value in (
                    (node.value.body, node.value.orelse) if isinstance(node.value, ast.IfExp) else (node.value,)
                ):
                    add(value, where)  # raise Forbidden(..., code="..."), InvalidCredentials(oauth_error=...)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):  # def require_x(..., code="...")
                args = node.args
                named = [*args.posonlyargs, *args.args][-len(args.defaults) :] if args.defaults else []
                pairs = [*zip(named, args.defaults, strict=True), *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
                for arg, default in pairs:
                    if arg.arg == "code" and default is not None:
                        add(default, where)
            elif isinstance(node, ast.ClassDef):  # an error class's own code
                for stmt in node.body:
                    if isinstance(stmt, ast.Assign) and any(getattr(t, "id", None) == "code" for t in stmt.targets):
                        add(stmt.value, where)
            elif isinstance(node, ast.Tuple | ast.Call):  # (422, "validation_error", ...), _respond(req, 422, ...)
                seq = node.elts if isinstance(node, ast.Tuple) else node.args
                for first, second in itertools.pairwise(seq):
                    if status(first):
                        add(second, where)
            elif isinstance(node, ast.Dict):  # {405: ("method_not_allowed", "..."), ...}
                for key, value in zip(node.keys, node.values, strict=True):
                    if status(key) and isinstance(value, ast.Tuple) and value.elts:
                        add(value.elts[0], where)
    return codes


# ---- the cases ----------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    client: httpx.AsyncClient
    party: Callable
    monkeypatch: pytest.MonkeyPatch


Case = Callable[[Ctx], Awaitable[httpx.Response]]
CASES: dict[str, tuple[int, Case]] = {}


def case(code: str, status: int):
    def register(fn: Case) -> Case:
        assert code not in CASES, code
        CASES[code] = (status, fn)
        return fn

    return register


async def _upload(caller, content: bytes, name: str = "bien-ban.pdf", **fields) -> httpx.Response:
    return await caller.post(DOCS, files={"file": (name, content, "application/octet-stream")}, data=fields)


async def _uploaded(caller, content: bytes | None = None, **fields) -> dict:
    r = await _upload(caller, content or files.pdf(), **fields)
    assert r.status_code == 201, r.text
    return r.json()


def _grant(name: str) -> dict:
    spec = ACCOUNTS[name]
    if spec.kind == "user":
        return {"grant_type": "password", "username": spec.login, "password": spec.secret}
    return {"grant_type": "client_credentials", "client_id": spec.login, "client_secret": spec.secret}


def _public_key() -> dict:
    return {**jwk.JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True), "kid": "khoa-2026"}


# Requests the HTTP layer refuses before any route runs.


@case("not_found", 404)
async def _(c: Ctx):
    return await c.client.get("/api/v1/nowhere")


@case("method_not_allowed", 405)
async def _(c: Ctx):
    return await (await c.party("ba_dinh_system")).delete("/api/v1/organizations")


@case("bad_request", 400)
async def _(c: Ctx):  # a multipart body without its boundary cannot be parsed at all
    officer = await c.party("khoi_officer")
    return await officer.post(DOCS, content=b"garbage", headers={"Content-Type": "multipart/form-data"})


@case("validation_error", 422)
async def _(c: Ctx):
    return await (await c.party("khoi_clerk")).post(NOTICES, json={"kind": "violation.reported"})


@case("invalid_characters", 400)
async def _(c: Ctx):
    return await (await c.party("khoi_clerk")).get("/api/v1/members", params={"q": "Nguy\x00n"})


@case("uri_too_long", 414)
async def _(c: Ctx):
    return await (await c.party("khoi_clerk")).get("/api/v1/members", params={"q": "a" * 10_000})


@case("payload_too_large", 413)
async def _(c: Ctx):
    body = b'{"pad": "' + b"x" * (settings.max_body_bytes + 1) + b'"}'
    headers = {"Content-Type": "application/json"}
    return await (await c.party("khoi_clerk")).post(NOTICES, content=body, headers=headers)


# Tokens and accounts.


@case("missing_token", 401)
async def _(c: Ctx):
    return await c.client.get("/api/v1/organizations")


@case("invalid_token", 401)
async def _(c: Ctx):
    return await c.client.get("/api/v1/organizations", headers={"Authorization": "Bearer not.a.token"})


@case("invalid_grant", 401)
async def _(c: Ctx):
    return await c.client.post(TOKEN, data={**_grant("khoi_clerk"), "password": "wrong"})


@case("invalid_client", 401)
async def _(c: Ctx):
    return await c.client.post(TOKEN, data={**_grant("ba_dinh_system"), "client_secret": "wrong"})


@case("invalid_request", 401)
async def _(c: Ctx):
    return await c.client.post(TOKEN, data={"grant_type": "password", "username": ACCOUNTS["khoi_clerk"].login})


@case("unsupported_grant_type", 422)
async def _(c: Ctx):
    return await c.client.post(TOKEN, data={"grant_type": "implicit"})


@case("login_throttled", 429)
async def _(c: Ctx):
    for _ in range(settings.login_max_failures_per_username):
        await c.client.post(TOKEN, data={**_grant("khoi_clerk"), "password": "guess"})
    return await c.client.post(TOKEN, data=_grant("khoi_clerk"))


@case("token_rate_limited", 429)
async def _(c: Ctx):
    c.monkeypatch.setattr(settings, "login_max_tokens_per_account", 1)
    await c.client.post(TOKEN, data=_grant("cau_giay_system"))
    return await c.client.post(TOKEN, data=_grant("cau_giay_system"))


async def _new_account(c: Ctx) -> tuple:
    """A client account the Khối's admin just created, its id, and a token of its own."""
    admin = await c.party("khoi_admin")
    r = await admin.post("/api/v1/accounts", json={"kind": "client", "org_code": "khoi-cqtp", "roles": ["clerk"]})
    assert r.status_code == 201, r.text
    created = r.json()
    form = {"grant_type": "client_credentials", "client_id": created["login"], "client_secret": created["secret"]}
    token = (await c.client.post(TOKEN, data=form)).json()["access_token"]
    return admin, created["id"], {"Authorization": f"Bearer {token}"}


@case("token_revoked", 401)
async def _(c: Ctx):
    admin, account_id, auth = await _new_account(c)
    assert (await admin.post(f"/api/v1/accounts/{account_id}/rotate-secret")).status_code == 200
    return await c.client.get("/api/v1/organizations", headers=auth)


@case("account_disabled", 401)
async def _(c: Ctx):
    admin, account_id, auth = await _new_account(c)
    assert (await admin.post(f"/api/v1/accounts/{account_id}/disable")).status_code == 200
    return await c.client.get("/api/v1/organizations", headers=auth)


@case("role_required", 403)
async def _(c: Ctx):
    return await (await c.party("khoi_clerk")).get("/api/v1/audit/entries")


@case("staff_only", 403)
async def _(c: Ctx):
    return await (await c.party("ba_dinh_admin_system")).get("/api/v1/accounts")


@case("org_not_managed", 403)
async def _(c: Ctx):
    body = {"kind": "user", "org_code": "cau-giay", "username": "intruder", "roles": ["clerk"]}
    return await (await c.party("ba_dinh_admin")).post("/api/v1/accounts", json=body)


@case("account_not_found", 404)
async def _(c: Ctx):
    return await (await c.party("khoi_admin")).get(f"/api/v1/accounts/{uuid.uuid4()}")


@case("organization_not_found", 404)
async def _(c: Ctx):
    return await (await c.party("cau_giay_system")).get("/api/v1/organizations/atlantis")


@case("role_not_allowed", 422)
async def _(c: Ctx):
    body = {"kind": "client", "org_code": "ba-dinh", "roles": ["officer"]}
    return await (await c.party("khoi_admin")).post("/api/v1/accounts", json=body)


@case("username_not_allowed", 422)
async def _(c: Ctx):
    body = {"kind": "client", "org_code": "ba-dinh", "roles": ["clerk"], "username": "chosen"}
    return await (await c.party("khoi_admin")).post("/api/v1/accounts", json=body)


@case("username_required", 422)
async def _(c: Ctx):
    body = {"kind": "user", "org_code": "ba-dinh", "roles": ["clerk"]}
    return await (await c.party("khoi_admin")).post("/api/v1/accounts", json=body)


@case("officer_identity", 422)
async def _(c: Ctx):
    body = {"kind": "user", "org_code": "ba-dinh", "username": "x.officer", "roles": ["officer"]}
    return await (await c.party("khoi_admin")).post("/api/v1/accounts", json=body)


@case("login_prefix_required", 422)
async def _(c: Ctx):
    body = {"kind": "user", "org_code": "ba-dinh", "username": "no.such.login", "roles": ["clerk"]}
    return await (await c.party("ba_dinh_admin")).post("/api/v1/accounts", json=body)


@case("login_taken", 409)
async def _(c: Ctx):
    body = {"kind": "user", "org_code": "ba-dinh", "username": "t.badinh.clerk", "roles": ["clerk"]}
    return await (await c.party("khoi_admin")).post("/api/v1/accounts", json=body)


@case("cannot_disable_self", 409)
async def _(c: Ctx):
    admin = await c.party("khoi_admin")
    me = next(a for a in (await admin.get("/api/v1/accounts")).json()["items"] if a["login"] == admin.spec.login)
    return await admin.post(f"/api/v1/accounts/{me['id']}/disable")


@case("metrics_token_required", 401)
async def _(c: Ctx):
    c.monkeypatch.setattr(settings, "metrics_token", "m" * 40)
    return await c.client.get("/metrics")


# Members and notices: the exchange's rules.


@case("member_not_found", 404)
async def _(c: Ctx):
    return await (await c.party("khoi_clerk")).post(NOTICES, json=violation("99999999"))


@case("member_not_in_area", 422)
async def _(c: Ctx):  # the Khối told Ba Đình about a member who has since moved to Cầu Giấy
    khoi, ba_dinh = await c.party("khoi_clerk"), await c.party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh")
    report = await push(khoi, violation(card))
    assert (await khoi.put(f"/api/v1/members/{card}", json=member_body("cau-giay"))).status_code == 200
    question = {k: v for k, v in info_request(card).items() if k != "member_card_no"}
    return await ba_dinh.post(f"{NOTICES}/{report['id']}/replies", json=question)


@case("direction_not_allowed", 403)
async def _(c: Ctx):
    card = await add_member(await c.party("khoi_clerk"), "ba-dinh")
    return await (await c.party("ba_dinh_system")).post(NOTICES, json=introduction(card))


@case("recipient_mismatch", 422)
async def _(c: Ctx):
    khoi = await c.party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    return await khoi.post(NOTICES, json={**violation(card), "recipient_org": "cau-giay"})


@case("date_in_future", 422)
async def _(c: Ctx):
    khoi = await c.party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    body = violation(card)
    return await khoi.post(NOTICES, json={**body, "payload": {**body["payload"], "observed_on": "2999-01-01"}})


@case("due_date_in_past", 422)
async def _(c: Ctx):
    khoi = await c.party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    body = feedback_request(card)
    return await khoi.post(NOTICES, json={**body, "payload": {**body["payload"], "due_date": "2020-01-01"}})


async def _moved(c: Ctx, from_org: str, to_org: str) -> httpx.Response:
    khoi, ba_dinh = await c.party("khoi_clerk"), await c.party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh")
    move = {
        "kind": "member.residence_changed",
        "member_card_no": card,
        "payload": {"from_org": from_org, "to_org": to_org, "moved_on": "2026-01-10"},
    }
    return await ba_dinh.post(NOTICES, json=move)


@case("not_a_district", 422)
async def _(c: Ctx):
    return await _moved(c, "ba-dinh", "khoi-cqtp")


@case("residence_mismatch", 422)
async def _(c: Ctx):  # Ba Đình reports a move away from another district
    return await _moved(c, "cau-giay", "dong-da")


async def _thread(c: Ctx) -> tuple:
    khoi, ba_dinh = await c.party("khoi_clerk"), await c.party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh")
    return khoi, ba_dinh, card, await push(khoi, introduction(card))


@case("not_recipient", 403)
async def _(c: Ctx):
    khoi, _, _, intro = await _thread(c)
    return await khoi.post(f"{NOTICES}/{intro['id']}/replies", json=accepted())


@case("reply_kind_mismatch", 422)
async def _(c: Ctx):
    _, ba_dinh, _, intro = await _thread(c)
    return await ba_dinh.post(f"{NOTICES}/{intro['id']}/replies", json=feedback_given())


@case("already_answered", 409)
async def _(c: Ctx):
    _, ba_dinh, _, intro = await _thread(c)
    assert (await ba_dinh.post(f"{NOTICES}/{intro['id']}/replies", json=accepted())).status_code == 201
    return await ba_dinh.post(f"{NOTICES}/{intro['id']}/replies", json=accepted())


@case("year_mismatch", 422)
async def _(c: Ctx):
    khoi, ba_dinh = await c.party("khoi_clerk"), await c.party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh", residence_status="accepted", residence_cell="Chi bộ 7")
    request = await push(khoi, feedback_request(card, year=2026))
    return await ba_dinh.post(f"{NOTICES}/{request['id']}/replies", json=feedback_given(year=2025))


@case("notice_not_found", 404)
async def _(c: Ctx):
    return await (await c.party("ba_dinh_system")).get(f"{NOTICES}/{uuid.uuid4()}")


def _correction(card: str, of: str, corrected: dict) -> dict:
    return {
        "kind": "notice.corrected",
        "member_card_no": card,
        "supersedes": of,
        "payload": {"reason": "Sai số giấy giới thiệu", "corrected": corrected},
    }


@case("not_sender", 403)
async def _(c: Ctx):
    khoi, ba_dinh = await c.party("khoi_clerk"), await c.party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh")
    theirs = await push(ba_dinh, violation(card))
    return await khoi.post(NOTICES, json=_correction(card, theirs["id"], violation(card)["payload"]))


@case("member_mismatch", 422)
async def _(c: Ctx):
    khoi, _, card, intro = await _thread(c)
    other = await add_member(khoi, "ba-dinh")
    return await khoi.post(NOTICES, json=_correction(other, intro["id"], introduction(card)["payload"]))


@case("invalid_correction", 422)
async def _(c: Ctx):
    khoi, _, card, intro = await _thread(c)
    return await khoi.post(NOTICES, json=_correction(card, intro["id"], {"summary": ""}))


@case("already_superseded", 409)
async def _(c: Ctx):
    khoi, _, card, intro = await _thread(c)
    body = _correction(card, intro["id"], {**introduction(card)["payload"], "letter_no": "126-GGT/ĐUK"})
    assert (await khoi.post(NOTICES, json=body)).status_code == 201
    return await khoi.post(NOTICES, json=body)


@case("khoi_only", 403)
async def _(c: Ctx):
    body = {"year": 2026, "deadline": "2026-12-31"}
    return await (await c.party("ba_dinh_clerk")).post("/api/v1/feedback-rounds", json=body)


@case("round_not_found", 404)
async def _(c: Ctx):
    return await (await c.party("khoi_clerk")).get(f"/api/v1/feedback-rounds/{uuid.uuid4()}")


@case("invalid_cursor", 400)
async def _(c: Ctx):
    return await (await c.party("ba_dinh_system")).get(f"{NOTICES}/inbox", params={"cursor": "!!!"})


@case("invalid_idempotency_key", 400)
async def _(c: Ctx):
    khoi = await c.party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    return await khoi.post(NOTICES, json=violation(card), headers={"Idempotency-Key": "bad key"})


@case("idempotency_key_reused", 422)
async def _(c: Ctx):
    khoi = await c.party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    assert (await khoi.post(NOTICES, json=violation(card), headers=key)).status_code == 201
    return await khoi.post(NOTICES, json=discipline(card), headers=key)


# Documents and supplier keys.


@case("document_not_found", 404)
async def _(c: Ctx):
    return await (await c.party("khoi_officer")).get(f"{DOCS}/{uuid.uuid4()}")


@case("empty_document", 422)
async def _(c: Ctx):
    return await _upload(await c.party("khoi_officer"), b"", name="rong.pdf")


@case("extension_mismatch", 415)
async def _(c: Ctx):
    return await _upload(await c.party("khoi_officer"), files.png(), name="tai-lieu.pdf")


@case("unsupported_document_type", 415)
async def _(c: Ctx):
    return await _upload(await c.party("khoi_officer"), files.exe(), name="bao-cao.pdf")


@case("active_content_refused", 415)
async def _(c: Ctx):
    return await _upload(await c.party("khoi_officer"), b"<html><script>alert(1)</script></html>", name="a.hta")


@case("document_too_large", 413)
async def _(c: Ctx):
    c.monkeypatch.setattr(settings, "max_document_bytes", 1000)
    return await _upload(await c.party("khoi_officer"), files.pdf("x" * 2000))


@case("attester_required", 422)
async def _(c: Ctx):
    return await _upload(await c.party("ba_dinh_system"), files.pdf())


@case("attester_not_officer", 422)
async def _(c: Ctx):
    return await _upload(await c.party("ba_dinh_system"), files.pdf(), attested_by="t.badinh.admin")


@case("not_supplier", 403)
async def _(c: Ctx):
    khoi = await c.party("khoi_officer")
    doc = await _uploaded(khoi)
    await push(khoi, {**introduction(await add_member(khoi, "ba-dinh")), "document_ids": [doc["id"]]})
    ba_dinh = await c.party("ba_dinh_clerk")  # received it, but did not supply it
    return await ba_dinh.post(
        f"{DOCS}/{doc['id']}/corrections", files={"file": ("x.pdf", files.pdf())}, data={"reason": "không phải"}
    )


@case("not_latest", 409)
async def _(c: Ctx):
    officer = await c.party("khoi_officer")
    v1 = await _uploaded(officer)
    fix = {"files": {"file": ("x.pdf", files.pdf("v2"))}, "data": {"reason": "Sai ngày"}}
    assert (await officer.post(f"{DOCS}/{v1['id']}/corrections", **fix)).status_code == 201
    return await officer.post(f"{DOCS}/{v1['id']}/corrections", **fix)


@case("signature_invalid", 422)
async def _(c: Ctx):
    return await _upload(await c.party("khoi_officer"), files.pdf(), signature="not-a-jws")


@case("invalid_key", 422)
async def _(c: Ctx):
    return await (await c.party("khoi_admin")).post("/api/v1/supplier-keys", json={"jwk": {"kty": "RSA"}})


@case("key_exists", 409)
async def _(c: Ctx):
    admin = await c.party("khoi_admin")
    key = _public_key()
    assert (await admin.post("/api/v1/supplier-keys", json={"jwk": key})).status_code == 201
    return await admin.post("/api/v1/supplier-keys", json={"jwk": key})


@case("key_not_found", 404)
async def _(c: Ctx):
    return await (await c.party("khoi_admin")).delete("/api/v1/supplier-keys/no-such-key")


# Subscriptions (push delivery).


@case("invalid_url", 422)
async def _(c: Ctx):
    return await (await c.party("ba_dinh_system")).post(SUBS, json={"url": "ftp://127.0.0.1/x"})


@case("url_not_allowed", 422)
async def _(c: Ctx):
    return await (await c.party("ba_dinh_system")).post(SUBS, json={"url": "http://10.0.0.1/hook"})


@case("url_unresolvable", 422)
async def _(c: Ctx):
    return await (await c.party("ba_dinh_system")).post(SUBS, json={"url": "http://no-such-host.invalid/x"})


@case("https_required", 422)
async def _(c: Ctx):  # an allowed address that is not loopback must be reached over HTTPS
    c.monkeypatch.setitem(
        settings.__dict__, "webhook_networks", (ip_network("127.0.0.0/8"), ip_network("192.0.2.0/24"))
    )
    return await (await c.party("ba_dinh_system")).post(SUBS, json={"url": "http://192.0.2.10/hook"})


async def _subscription(c: Ctx) -> tuple:
    ba_dinh = await c.party("ba_dinh_system")
    r = await ba_dinh.post(SUBS, json={"url": "http://127.0.0.1:9/hook"})
    assert r.status_code == 201, r.text
    return ba_dinh, r.json()


@case("subscription_not_found", 404)
async def _(c: Ctx):
    return await (await c.party("ba_dinh_system")).get(f"{SUBS}/{uuid.uuid4()}/deliveries")


@case("subscription_disabled", 422)
async def _(c: Ctx):  # the receiver answered 410 Gone, which disables the subscription
    rec, server, task = await start_receiver()
    try:
        ba_dinh = await c.party("ba_dinh_system")
        sub = (await ba_dinh.post(SUBS, json={"url": rec.url})).json()
        rec.secrets.append(sub["secret"])
        khoi = await c.party("khoi_clerk")
        await push(khoi, introduction(await add_member(khoi, "ba-dinh")))
        rec.replies = [(410, {})]
        await run_worker()
    finally:
        server.should_exit = True
        await task
    delivery = (await ba_dinh.get(f"{SUBS}/{sub['id']}/deliveries")).json()["items"][0]
    return await ba_dinh.post(f"{SUBS}/{sub['id']}/deliveries/{delivery['id']}/redeliver")


@case("delivery_not_found", 404)
async def _(c: Ctx):
    ba_dinh, sub = await _subscription(c)
    return await ba_dinh.post(f"{SUBS}/{sub['id']}/deliveries/{uuid.uuid4()}/redeliver")


# Registry editions (the operator's admins; tests/test_registry_editions.py has the whole story).


def _register_invalid_editions() -> None:
    for code in sorted(editions.INVALID):

        async def provoke(c: Ctx, code: str = code) -> httpx.Response:
            return await (await c.party("khoi_admin")).post(editions.PLAN, json=editions.INVALID[code])

        case(code, 422)(provoke)


_register_invalid_editions()


async def _applied_sample(c: Ctx) -> None:
    r = await (await c.party("khoi_admin")).post(editions.EDITIONS, json=editions.sample())
    assert r.status_code == 201, r.text


@case("edition_already_retired", 422)
async def _(c: Ctx):
    await _applied_sample(c)
    again = {**editions.sample(), "edition": "lan-hai", "committees": []}
    again["retire"] = [{"code": "ba-dinh", "successors": ["phuong-ba-dinh"]}]
    return await (await c.party("khoi_admin")).post(editions.PLAN, json=again)


@case("edition_not_yet_effective", 422)
async def _(c: Ctx):
    later = {**editions.sample(), "effective": (date.today() + timedelta(days=30)).isoformat()}
    return await (await c.party("khoi_admin")).post(editions.EDITIONS, json=later)


@case("edition_is_example", 422)
async def _(c: Ctx):
    c.monkeypatch.setitem(settings.__dict__, "environment", "production")
    return await (await c.party("khoi_admin")).post(editions.EDITIONS, json=editions.sample())


@case("edition_conflict", 409)
async def _(c: Ctx):
    await _applied_sample(c)
    other = {**editions.sample(), "description": "Cùng mã ấn bản, nội dung khác."}
    return await (await c.party("khoi_admin")).post(editions.EDITIONS, json=other)


@case("operator_only", 403)
async def _(c: Ctx):
    return await (await c.party("ba_dinh_admin")).post(editions.PLAN, json=editions.sample())


@case("recipient_retired", 422)
async def _(c: Ctx):  # a member the edition could not map (Kim Mã was split) still names the retired district
    khoi = await c.party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh", residence_ward="Phường Kim Mã")
    await _applied_sample(c)
    return await khoi.post(NOTICES, json=violation(card))


@case("organization_retired", 401)
async def _(c: Ctx):
    ba_dinh = await c.party("ba_dinh_system")  # a token from before the change
    await _applied_sample(c)
    return await ba_dinh.get(NOTICES + "/inbox")


# Audit.


@case("invalid_checkpoint", 400)
async def _(c: Ctx):
    auditor = await c.party("khoi_auditor")
    return await auditor.get("/api/v1/audit/verify", params={"checkpoint": "eyJhbGciOiJub25lIn0.eyJzaXplIjo5OTl9."})


@case("audit_not_verified_yet", 404)
async def _(c: Ctx):
    return await (await c.party("ba_dinh_auditor")).get("/api/v1/audit/verify")


# Provoked by a test of their own: a fault, a race or a clock to arrange, which a table row would only copy.
ELSEWHERE = {
    "database_unavailable": "tests/test_faults.py::test_the_database_gone_mid_load_is_503_with_retry_after_and_"
    "recovers_without_restart",
    "audit_unavailable": "tests/test_audit.py::test_when_the_audit_entry_cannot_be_written_the_change_is_rolled_"
    "back_with_503",
    "storage_full": "tests/test_faults.py::test_a_full_disk_is_507_and_leaves_no_dangling_metadata",
    "content_integrity_failed": "tests/test_documents.py::test_tampered_stored_bytes_are_detected_on_read",
    "request_timeout": "tests/test_limits.py::test_a_client_that_stalls_in_the_middle_of_its_body_gets_408_promptly",
    "idempotency_in_progress": "tests/test_exchange.py::test_concurrent_duplicates_with_one_key_create_exactly_one_"
    "notice",
    "cursor_outdated": "tests/test_exchange.py::test_a_cursor_handed_out_before_positions_existed_keeps_working",
    "signature_key_unknown": "tests/test_documents.py::test_a_supplier_signature_is_verified_against_that_"
    "committees_registered_key",
    "signature_mismatch": "tests/test_documents.py::test_a_supplier_signature_is_verified_against_that_"
    "committees_registered_key",
    "edition_round_running": "tests/test_registry_editions.py::test_an_edition_waits_for_a_round_that_is_still_"
    "creating_its_requests",
    # These two need committees the shipped registry does not hold (a second workplace side, one with no side).
    "member_other_workplace": "tests/test_sides.py::test_a_second_workplace_committee_exchanges_with_the_district_"
    "where_its_member_lives",
    "org_not_party": "tests/test_sides.py::test_a_committee_with_no_side_takes_no_part",
}

# Codes in the source that no client request can produce, and why.
UNREACHABLE = {
    "internal_error": "a 500 is a bug: the fuzz test asserts no request produces one",
    "upload_changed": "the stored bytes differ from the hashed ones only if the spooled upload changes mid-request",
    "not_member_district": "the reply is refused first with member_not_in_area, by the same scope rule; only a move "
    "committed between the two reads of one request reaches it",
    "not_acceptable": "in the handlers' table of HTTP statuses; no route answers 406",
    "unsupported_media_type": "the generic 415; every 415 the service answers carries its own code",
    "unauthorized": "the generic 401 and Unauthorized's default; every 401 carries its own code",
    "forbidden": "Forbidden's default; every 403 carries its own code",
    "conflict": "Conflict's default; every 409 carries its own code",
    "unprocessable": "Unprocessable's default; every 422 carries its own code",
    "too_many_requests": "TooManyRequests' default; every 429 carries its own code",
    "service_unavailable": "ServiceUnavailable's default; every 503 carries its own code",
}


def test_every_code_has_a_case():
    found = catalogue()
    covered = set(CASES) | set(ELSEWHERE) | set(UNREACHABLE)
    missing = {code: where for code, where in found.items() if code not in covered}
    assert missing == {}, f"give these codes a case in tests/test_error_codes.py: {missing}"
    assert sorted(covered - set(found)) == [], "cases for codes the app no longer has"
    assert set(CASES).isdisjoint(ELSEWHERE) and set(CASES).isdisjoint(UNREACHABLE)
    assert set(ELSEWHERE).isdisjoint(UNREACHABLE)


@pytest.mark.parametrize("code", sorted(ELSEWHERE))
def test_codes_provoked_elsewhere_are_asserted_there(code):
    path, _, name = ELSEWHERE[code].partition("::")
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    test = next(
        (n for n in tree.body if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef) and n.name == name), None
    )
    assert test is not None, f"{ELSEWHERE[code]} does not exist"
    literals = {n.value for n in ast.walk(test) if isinstance(n, ast.Constant)}
    assert code in literals, f"{ELSEWHERE[code]} does not assert {code!r}"


@pytest.mark.parametrize("code", sorted(CASES))
async def test_each_code_is_answered_as_documented(code, client, party, monkeypatch):
    status, provoke = CASES[code]
    r = await provoke(Ctx(client, party, monkeypatch))
    body = assert_problem(r, status, code)
    assert body["type"].endswith(f"/{code}")
    assert r.headers.get("x-request-id")
    if status == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")
    if status in (429, 503):
        assert int(r.headers["retry-after"]) > 0
