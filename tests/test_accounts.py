"""Account administration: who may create and disable whose accounts; secrets shown once, stored hashed."""

import uuid

from sqlalchemy import select

from app.infra.db import db
from app.models.account import Account
from tests.helpers import assert_problem

ACCOUNTS_URL = "/api/v1/accounts"


async def test_khoi_admin_creates_a_district_system_client_that_can_then_log_in(client, party):
    admin = await party("khoi_admin")
    r = await admin.post(ACCOUNTS_URL, json={"kind": "client", "org_code": "dong-da", "roles": ["clerk"]})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["org_code"] == "dong-da" and created["login"].startswith("dong-da-") and created["secret"]
    async with db.sessions() as s:
        stored = (
            await s.execute(select(Account.secret_hash).where(Account.id == uuid.UUID(created["id"])))
        ).scalar_one()
    assert stored.startswith("$argon2id$") and created["secret"] not in stored
    r = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": created["login"], "client_secret": created["secret"]},
    )
    assert r.status_code == 200
    # The secret is never shown again.
    r = await admin.get(f"{ACCOUNTS_URL}/{created['id']}")
    assert r.status_code == 200 and "secret" not in r.json()


async def test_district_admin_manages_only_its_own_committee(party):
    admin = await party("ba_dinh_admin")
    r = await admin.post(
        ACCOUNTS_URL, json={"kind": "user", "org_code": "cau-giay", "username": "intruder", "roles": ["clerk"]}
    )
    assert_problem(r, 403, "org_not_managed")
    r = await admin.post(
        ACCOUNTS_URL,
        json={
            "kind": "user",
            "org_code": "ba-dinh",
            "username": "ba-dinh.tran.van.b",
            "roles": ["clerk"],
            "full_name": "Trần Văn B",
        },
    )
    assert r.status_code == 201, r.text
    listed = (await admin.get(ACCOUNTS_URL)).json()["items"]
    assert listed and {a["org_code"] for a in listed} == {"ba-dinh"}
    # Another committee's account does not exist as far as this admin can tell.
    other = await party("cau_giay_admin")
    other_id = (await other.get(ACCOUNTS_URL)).json()["items"][0]["id"]
    assert_problem(await admin.get(f"{ACCOUNTS_URL}/{other_id}"), 404, "account_not_found")
    assert_problem(await admin.post(f"{ACCOUNTS_URL}/{other_id}/disable"), 404, "account_not_found")


async def test_clerks_auditors_and_system_tokens_cannot_call_admin_endpoints(party):
    for name in ("khoi_clerk", "khoi_auditor", "ba_dinh_system"):
        caller = await party(name)
        assert_problem(await caller.get(ACCOUNTS_URL), 403)
        r = await caller.post(ACCOUNTS_URL, json={"kind": "client", "org_code": caller.org, "roles": ["clerk"]})
        assert_problem(r, 403)
    # An admin role on a system client is still not a person: admin endpoints are staff-only.
    system_admin = await party("ba_dinh_admin_system")
    assert_problem(await system_admin.get(ACCOUNTS_URL), 403, "staff_only")


async def test_account_creation_validates_its_input(party):
    admin = await party("khoi_admin")
    cases = [
        ({"kind": "client", "org_code": "ba-dinh", "roles": ["officer"]}, 422, "role_not_allowed"),
        (
            {"kind": "client", "org_code": "ba-dinh", "roles": ["clerk"], "username": "chosen"},
            422,
            "username_not_allowed",
        ),
        ({"kind": "user", "org_code": "ba-dinh", "roles": ["clerk"]}, 422, "username_required"),
        (
            {"kind": "user", "org_code": "ba-dinh", "username": "x.officer", "roles": ["officer"]},
            422,
            "officer_identity",
        ),
        (
            {"kind": "user", "org_code": "nowhere", "username": "someone", "roles": ["clerk"]},
            404,
            "organization_not_found",
        ),
        ({"kind": "user", "org_code": "ba-dinh", "username": "Bad Name!", "roles": ["clerk"]}, 422, "validation_error"),
        ({"kind": "robot", "org_code": "ba-dinh", "roles": ["clerk"]}, 422, "validation_error"),
        ({"kind": "user", "org_code": "ba-dinh", "username": "t.badinh.clerk", "roles": ["clerk"]}, 409, "login_taken"),
    ]
    for body, status, code in cases:
        assert_problem(await admin.post(ACCOUNTS_URL, json=body), status, code)


async def test_an_admin_cannot_lock_themself_out(party):
    admin = await party("khoi_admin")
    me = next(
        a
        for a in (await admin.get(ACCOUNTS_URL, params={"org_code": "khoi-cqtp", "limit": 200})).json()["items"]
        if a["login"] == admin.spec.login
    )
    assert_problem(await admin.post(f"{ACCOUNTS_URL}/{me['id']}/disable"), 409, "cannot_disable_self")


async def test_account_list_is_cursor_paginated(party):
    admin = await party("khoi_admin")
    seen, cursor = [], None
    while True:
        r = await admin.get(ACCOUNTS_URL, params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200
        body = r.json()
        seen += [a["login"] for a in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) >= 10
    assert_problem(await admin.get(ACCOUNTS_URL, params={"cursor": "!!!"}), 400, "invalid_cursor")
    assert_problem(await admin.get(ACCOUNTS_URL, params={"limit": 10**9}), 422, "validation_error")
