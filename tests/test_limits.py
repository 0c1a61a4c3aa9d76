"""Hostile input: oversized and deeply nested bodies, huge arrays and limits, long query strings, NUL bytes and
tricky Unicode. Each is a quick 4xx with a problem document; never a 500; the same on SQLite and PostgreSQL."""

import asyncio
import json
import unicodedata

from jwcrypto import jwk

from app.main import app
from tests.exchange import add_member, feedback_given, feedback_request, member_body, new_card, push, violation
from tests.helpers import assert_problem

NOTICES = "/api/v1/notices"


async def test_a_10_mb_json_body_is_refused(party):
    khoi = await party("khoi_clerk")
    body = b'{"kind": "violation.reported", "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    r = await khoi.post(NOTICES, content=body, headers={"Content-Type": "application/json"})
    assert_problem(r, 413, "payload_too_large")


async def test_json_nested_10000_deep_is_refused_cleanly(party):
    khoi = await party("khoi_clerk")
    deep = "[" * 10_000 + "]" * 10_000
    r = await khoi.post(NOTICES, content=deep, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.status_code
    assert r.headers["content-type"].startswith("application/problem+json")
    deep_object = '{"kind": "violation.reported", "payload": ' + '{"a": ' * 10_000 + "1" + "}" * 10_001
    r = await khoi.post(NOTICES, content=deep_object, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.status_code


async def test_a_100000_item_array_and_a_limit_of_a_billion_are_refused(party):
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    body = {**violation(card), "document_ids": [1] * 100_000}  # 300 KB: under the body limit, over the list's
    assert_problem(await khoi.post(NOTICES, json=body), 422, "validation_error")
    huge = {**violation(card), "document_ids": ["00000000-0000-0000-0000-000000000000"] * 100_000}
    assert_problem(await khoi.post(NOTICES, json=huge), 413, "payload_too_large")
    auditor = await party("khoi_auditor")  # the audit log's role: the limit is checked, not the role guard
    for caller, path in (
        (khoi, "/api/v1/notices/inbox"),
        (khoi, "/api/v1/notices/outbox"),
        (khoi, "/api/v1/members"),
        (auditor, "/api/v1/audit/entries"),
    ):
        assert_problem(await caller.get(path, params={"limit": 10**9}), 422, "validation_error")
    assert_problem(await khoi.get("/api/v1/notices/inbox", params={"limit": -1}), 422, "validation_error")


async def test_a_100_kb_query_string_is_refused(party):
    khoi = await party("khoi_clerk")
    r = await khoi.get("/api/v1/members", params={"q": "a" * 60_000})  # as long as httpx will send
    assert_problem(r, 414, "uri_too_long")
    # 100 KB, straight to the ASGI app (a raw client could send it).
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/members",
        "raw_path": b"/api/v1/members",
        "query_string": b"q=" + b"a" * 100_000,
        "headers": [(b"authorization", f"Bearer {khoi.token}".encode())],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
        "state": {},
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 414 and json.loads(sent[1]["body"])["code"] == "uri_too_long"


async def test_nul_bytes_anywhere_are_refused_never_reach_the_database(party):
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    assert_problem(await khoi.get("/api/v1/members", params={"q": "Nguy\x00n"}), 400, "invalid_characters")
    assert_problem(await khoi.get("/api/v1/members/1234%005678"), 400, "invalid_characters")
    for body in (
        {**violation(card), "recipient_org": "ba-dinh\x00"},
        {**violation(card), "payload": {**violation(card)["payload"], "summary": "a\x00b"}},
        member_body(full_name="Nguyễn\x00An"),
    ):
        r = await (
            khoi.put(f"/api/v1/members/{card}", json=body) if "full_name" in body else khoi.post(NOTICES, json=body)
        )
        assert_problem(r, 422, "validation_error")
    # A real public key whose key id carries a NUL, sent by a committee admin (who may register keys, so the
    # character check is reached, not the role guard): refused, and nothing is stored.
    admin = await party("khoi_admin")
    public = json.loads(jwk.JWK.generate(kty="EC", crv="P-256").export_public())
    r = await admin.post("/api/v1/supplier-keys", json={"jwk": {**public, "kid": "khoi\x002026"}})
    assert_problem(r, 422, "invalid_key")
    assert (await khoi.get("/api/v1/supplier-keys")).json()["items"] == []
    assert (await admin.post("/api/v1/supplier-keys", json={"jwk": {**public, "kid": "khoi-2026"}})).status_code == 201


async def test_unicode_names_and_text_behave_the_same_on_every_database(party):
    khoi = await party("khoi_clerk")
    nfd_name = unicodedata.normalize("NFD", "Đỗ Thị Hường")
    card = new_card()
    r = await khoi.put(
        f"/api/v1/members/{card}",
        json=member_body(full_name=nfd_name, residence_status="accepted", residence_cell="Chi bộ 5"),
    )
    assert r.status_code == 201 and r.json()["full_name"] == unicodedata.normalize("NFC", nfd_name)
    # Invisible and direction-changing characters are refused in names (they make look-alike names)...
    for name in ("Nguyễn\u200bVăn", "Nguyễn\u202eVăn", "\ufeffNguyễn Văn", "Nguyễn\u2028Văn"):
        assert_problem(
            await khoi.put(f"/api/v1/members/{new_card()}", json=member_body(full_name=name)), 422, "validation_error"
        )
    # ...and kept, NFC-normalised, in free text, where quotations may carry them.
    request = await push(khoi, feedback_request(card))
    district = await party("ba_dinh_system")
    comments = unicodedata.normalize("NFD", "Gương mẫu \u200f(ghi chú) \u05e9\u05dc\u05d5\u05dd") + "\n\tHết."
    r = await district.post(
        f"{NOTICES}/{request['id']}/replies",
        json={**feedback_given(), "payload": {**feedback_given()["payload"], "comments": comments}},
    )
    assert r.status_code == 201, r.text
    stored = r.json()["payload"]["comments"]
    assert stored == unicodedata.normalize("NFC", comments.strip())
    # Read back from the database, character for character, on every database.
    read_back = await khoi.get(f"{NOTICES}/{r.json()['id']}")
    assert read_back.status_code == 200, read_back.text
    assert read_back.json()["payload"]["comments"] == stored
    # Search folds diacritics whatever the input form.
    found = (await khoi.get("/api/v1/members", params={"q": unicodedata.normalize("NFD", "hường")})).json()["items"]
    assert [m["party_card_no"] for m in found] == [card]
    found = (await khoi.get("/api/v1/members", params={"q": "do thi huong"})).json()["items"]
    assert [m["party_card_no"] for m in found] == [card]


async def test_times_must_be_iso_8601_with_an_offset(party):
    khoi = await party("khoi_clerk")
    for since in ("0", "1700000000", "2026-11-22T08:00:00", "yesterday"):
        assert_problem(await khoi.get("/api/v1/notices/inbox", params={"since": since}), 422, "validation_error")
    for since in ("2026-11-22T08:00:00+07:00", "2026-11-22T01:00:00Z"):
        assert (await khoi.get("/api/v1/notices/inbox", params={"since": since})).status_code == 200


async def test_a_client_that_stalls_in_the_middle_of_its_body_gets_408_promptly(party, monkeypatch):
    khoi = await party("khoi_clerk")
    middleware = app.middleware_stack
    while not hasattr(middleware, "body_timeout"):
        middleware = middleware.app
    monkeypatch.setattr(middleware, "body_timeout", 0.5)
    sent, chunks = [], iter([b'{"kind": "violation.reported", ', None])

    async def receive():
        chunk = next(chunks)
        if chunk is None:
            await asyncio.sleep(30)  # the client goes quiet
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/notices",
        "raw_path": b"/api/v1/notices",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {khoi.token}".encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
        "state": {},
    }
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    assert asyncio.get_running_loop().time() - started < 5
    assert sent[0]["status"] == 408 and json.loads(sent[1]["body"])["code"] == "request_timeout"
