"""Sides, not names: every rule of the exchange follows a committee's side in the registry, so a second workplace
committee, a ward committee on the residence side and a committee with no side behave by the same rules as the
Khối and the districts, with nothing in the code naming any of them."""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text

from app.infra.clock import today
from app.infra.db import db
from app.services.organizations import load_registry
from tests.exchange import (
    accepted,
    add_member,
    info_request,
    introduction,
    iso,
    member_body,
    new_card,
    pull_all,
    push,
    violation,
)
from tests.helpers import AccountSpec, Party, assert_problem

NOTICES = "/api/v1/notices"
MEMBERS = "/api/v1/members"
ACCOUNTS = "/api/v1/accounts"
ROUNDS = "/api/v1/feedback-rounds"
AUDIT = "/api/v1/audit"

KHOI = "khoi-cqtp"
B = "dn-khoi"  # a second workplace committee
WARD = "phuong-kim-ma"  # a residence committee that is not a district
NO_SIDE = "cb-tham-khao"  # kept in the registry for reference, takes no part in the exchange
RETIRED = "quan-da-giai-the"  # a residence committee whose term has ended

EXTRA_COMMITTEES = [
    {"code": B, "kind": "khoi", "name": "Đảng ủy Khối Doanh nghiệp (kiểm thử)", "side": "workplace"},
    {
        "code": WARD,
        "kind": "ward",
        "name": "Đảng ủy phường Kim Mã (kiểm thử)",
        "area": "Phường Kim Mã",
        "parent_code": "ba-dinh",
        "side": "residence",
    },
    {"code": NO_SIDE, "kind": "grassroots", "name": "Chi bộ tham khảo (kiểm thử)", "parent_code": KHOI},
    {
        "code": RETIRED,
        "kind": "district",
        "name": "Quận ủy đã giải thể (kiểm thử)",
        "side": "residence",
        "valid_from": "2014-01-01",
        "valid_to": "2025-07-01",
    },
]


@pytest.fixture
async def registry() -> AsyncIterator[None]:
    """The shipped registry plus the three committees above, loaded by the registry loader (the test's clean-up puts
    the registry back as it was)."""
    async with db.sessions() as session:
        await load_registry(session=session, entries=EXTRA_COMMITTEES)
        await session.commit()
    yield


class Accounts:
    """Accounts for the added committees, created by the operator's admin through the account API."""

    def __init__(self, client: httpx.AsyncClient, admin: Party) -> None:
        self.client, self.admin = client, admin

    async def __call__(self, org: str, *roles: str, username: str | None = None) -> Party:
        body = {"kind": "user" if username else "client", "org_code": org, "roles": list(roles)}
        if username:
            body |= {"username": username, "full_name": "Cán bộ kiểm thử", "position": "Chuyên viên"}
        r = await self.admin.post(ACCOUNTS, json=body)
        assert r.status_code == 201, r.text
        created = r.json()
        if username:
            form = {"grant_type": "password", "username": created["login"], "password": created["secret"]}
        else:
            form = {
                "grant_type": "client_credentials",
                "client_id": created["login"],
                "client_secret": created["secret"],
            }
        token = await self.client.post("/api/v1/auth/token", data=form)
        assert token.status_code == 200, token.text
        spec = AccountSpec(created["login"], body["kind"], org, roles, created["secret"])
        return Party(self.client, spec, token.json()["access_token"])


@pytest.fixture
async def accounts(registry, client, party) -> Accounts:
    return Accounts(client, await party("khoi_admin"))


async def _round(caller, year: int = 2026) -> dict:
    """Open the caller's round of the year and wait until its requests are made; its progress."""
    r = await caller.post(ROUNDS, json={"year": year, "deadline": iso(today() + timedelta(days=20))})
    assert r.status_code in (200, 201), r.text
    deadline = time.monotonic() + 60
    while True:
        progress = (await caller.get(f"{ROUNDS}/{r.json()['id']}")).json()
        if progress["status"] != "running":
            assert progress["status"] == "completed", progress
            return progress
        assert time.monotonic() < deadline, progress
        await asyncio.sleep(0.05)


async def test_a_second_workplace_committee_exchanges_with_the_district_where_its_member_lives(party, accounts):
    b = await accounts(B, "clerk", "officer", username=f"{B}.clerk")
    khoi = await party("khoi_clerk")
    ba_dinh = await party("ba_dinh_system")
    # B keeps its own member, living in Ba Đình.
    r = await b.put(f"{MEMBERS}/{(card := new_card())}", json=member_body("ba-dinh"))
    assert r.status_code == 201, r.text
    assert r.json()["workplace_org"] == B
    khoi_card = await add_member(khoi, "ba-dinh")
    assert (await khoi.get(f"{MEMBERS}/{khoi_card}")).json()["workplace_org"] == KHOI
    # The district reports a violation: it reaches B, not the Khối.
    report = await push(ba_dinh, violation(card))
    assert (report["sender_org"], report["recipient_org"]) == (ba_dinh.org, B)
    b_inbox, _ = await pull_all(b)
    assert [n["id"] for n in b_inbox] == [report["id"]]
    khoi_inbox, _ = await pull_all(khoi)
    assert khoi_inbox == []
    # B asks back in the thread: the question goes to the district.
    ask = {"kind": "info.requested", "payload": info_request(card)["payload"]}
    question = await b.post(f"{NOTICES}/{report['id']}/replies", json=ask)
    assert question.status_code == 201 and question.json()["recipient_org"] == ba_dinh.org
    # B introduces its member; the district pulls it and accepts the member; the answer goes to B.
    intro = await push(b, introduction(card))
    assert intro["recipient_org"] == ba_dinh.org
    district_inbox, _ = await pull_all(ba_dinh)
    assert [n["id"] for n in district_inbox] == [question.json()["id"], intro["id"]]
    answer = await ba_dinh.post(f"{NOTICES}/{intro['id']}/replies", json=accepted())
    assert answer.status_code == 201 and answer.json()["recipient_org"] == B
    assert (await b.get(f"{MEMBERS}/{card}")).json()["residence_status"] == "accepted"
    # The district sees both workplace committees' members who live in its area.
    listed = (await ba_dinh.get(MEMBERS)).json()["items"]
    assert {m["party_card_no"]: m["workplace_org"] for m in listed} == {card: B, khoi_card: KHOI}
    # Each workplace committee: the other's member does not exist for it, and cannot be taken over.
    assert_problem(await khoi.get(f"{MEMBERS}/{card}"), 404, "member_not_found")
    assert_problem(await b.get(f"{MEMBERS}/{khoi_card}"), 404, "member_not_found")
    assert (await khoi.get(MEMBERS, params={"card_no": card})).json()["items"] == []
    assert_problem(await khoi.post(NOTICES, json=violation(card)), 404, "member_not_found")
    assert_problem(await b.post(NOTICES, json=violation(khoi_card)), 404, "member_not_found")
    assert_problem(await khoi.get(f"{NOTICES}/{report['id']}"), 404, "notice_not_found")
    assert_problem(await khoi.put(f"{MEMBERS}/{card}", json=member_body("cau-giay")), 409, "member_other_workplace")
    assert_problem(await b.put(f"{MEMBERS}/{khoi_card}", json=member_body("cau-giay")), 409, "member_other_workplace")
    assert (await b.get(f"{MEMBERS}/{card}")).json()["residence_org"] == "ba-dinh"
    # A residence committee still cannot write member records or introduce.
    assert_problem(await ba_dinh.put(f"{MEMBERS}/{card}", json=member_body("ba-dinh")), 403, "khoi_only")
    assert_problem(await ba_dinh.post(NOTICES, json=introduction(card)), 403, "direction_not_allowed")


async def test_a_workplace_committee_that_is_not_the_operator_manages_and_audits_only_itself(party, accounts):
    b_admin = await accounts(B, "admin", username=f"{B}.admin")
    b_auditor = await accounts(B, "auditor", username=f"{B}.auditor")
    b = await accounts(B, "clerk")
    khoi = await party("khoi_clerk")
    await push(b, introduction(await add_member(b, "cau-giay")))
    await push(khoi, introduction(await add_member(khoi, "ba-dinh")))
    # Accounts: only its own committee's, and nothing of the Khối's.
    listed = (await b_admin.get(ACCOUNTS)).json()["items"]
    assert len(listed) == 3 and {a["org_code"] for a in listed} == {B}
    assert (await b_admin.get(ACCOUNTS, params={"org_code": KHOI})).json()["items"] == []
    khoi_accounts = (await (await party("khoi_admin")).get(ACCOUNTS, params={"org_code": KHOI})).json()["items"]
    assert khoi_accounts
    assert_problem(await b_admin.get(f"{ACCOUNTS}/{khoi_accounts[0]['id']}"), 404, "account_not_found")
    r = await b_admin.post(ACCOUNTS, json={"kind": "client", "org_code": KHOI, "roles": ["clerk"]})
    assert_problem(r, 403, "org_not_managed")
    r = await b_admin.post(ACCOUNTS, json={"kind": "user", "org_code": B, "username": "tran.b", "roles": ["clerk"]})
    assert_problem(r, 422, "login_prefix_required")
    r = await b_admin.post(
        ACCOUNTS, json={"kind": "user", "org_code": B, "username": f"{B}.tran.b", "roles": ["clerk"]}
    )
    assert r.status_code == 201, r.text
    # Audit: its own committee's actions and those about it; never a recomputation of the whole log.
    entries = (await b_auditor.get(f"{AUDIT}/entries", params={"limit": 200})).json()["items"]
    assert entries and all(B in (e["actor_org"], e["counterpart_org"]) for e in entries)
    assert {"member.upsert", "notice.push", "account.create"} <= {e["action"] for e in entries}
    khoi_own = {e["seq"] for e in entries if e["actor_org"] == KHOI and e["counterpart_org"] != B}
    assert khoi_own == set()
    # A district reading B's member is a read of B's records: B's auditor sees it.
    ba_dinh = await party("ba_dinh_system")
    card = await add_member(b, "ba-dinh")
    assert (await ba_dinh.get(f"{MEMBERS}/{card}")).status_code == 200
    reads = (await b_auditor.get(f"{AUDIT}/entries", params={"action": "member.read", "limit": 200})).json()
    assert [(e["actor_org"], e["counterpart_org"]) for e in reads["items"]] == [("ba-dinh", B)]
    assert_problem(await b_auditor.get(f"{AUDIT}/verify"), 404, "audit_not_verified_yet")
    # The operator's auditor reads everything, B's entries and the Khối's own included.
    everything = (await (await party("khoi_auditor")).get(f"{AUDIT}/entries", params={"limit": 200})).json()
    assert {e["seq"] for e in entries} < {e["seq"] for e in everything["items"]}
    assert any(e["actor_org"] == KHOI and e["action"] == "member.upsert" for e in everything["items"])


async def test_two_workplace_committees_each_run_their_own_round_of_the_same_year(party, accounts):
    b = await accounts(B, "clerk")
    khoi = await party("khoi_clerk")
    ready = {"residence_status": "accepted", "residence_cell": "Chi bộ Tổ dân phố số 7"}
    khoi_cards = [await add_member(khoi, "ba-dinh", **ready) for _ in range(2)]
    b_cards = [await add_member(b, "ba-dinh", **ready), await add_member(b, "cau-giay", **ready)]
    await add_member(b, "cau-giay")  # introduced, not yet accepted
    khoi_round = await _round(khoi)
    b_round = await _round(b)
    assert khoi_round["id"] != b_round["id"]
    assert khoi_round["totals"] == {"requested": 2, "answered": 0, "overdue": 0, "skipped": 0}
    assert b_round["totals"] == {"requested": 2, "answered": 0, "overdue": 0, "skipped": 1}
    assert {d["district"] for d in b_round["by_district"]} == {"ba-dinh", "cau-giay"}
    assert (await _round(b))["id"] == b_round["id"], "opened again: found by its committee, year and scope"
    # Each request comes from the member's own workplace committee.
    ba_dinh = await party("ba_dinh_system")
    requests, _ = await pull_all(ba_dinh, kind="feedback.requested")
    assert sorted((n["sender_org"], n["member_card_no"]) for n in requests) == sorted(
        [(KHOI, c) for c in khoi_cards] + [(B, b_cards[0])]
    )
    # Another workplace committee's round does not exist for the caller; a district sees its part of each.
    assert_problem(await khoi.get(f"{ROUNDS}/{b_round['id']}"), 404, "round_not_found")
    assert_problem(await b.get(f"{ROUNDS}/{khoi_round['id']}"), 404, "round_not_found")
    assert_problem(await khoi.post(f"{ROUNDS}/{b_round['id']}/reminders"), 404, "round_not_found")
    part = (await ba_dinh.get(f"{ROUNDS}/{b_round['id']}")).json()
    assert [d["district"] for d in part["by_district"]] == ["ba-dinh"] and part["totals"]["requested"] == 1
    assert_problem(await ba_dinh.post(ROUNDS, json={"year": 2026, "deadline": iso(today())}), 403, "khoi_only")
    # Overdue: the reminder goes out in the name of the round's owner.
    async with db.sessions() as s:
        await s.execute(
            text("UPDATE notices SET due_date = :d WHERE kind = 'feedback.requested' AND sender_org = :b"),
            {"d": today() - timedelta(days=2), "b": B},
        )
        await s.commit()
    assert (await b.post(f"{ROUNDS}/{b_round['id']}/reminders")).json() == {"sent": 2}
    reminders, _ = await pull_all(ba_dinh, kind="feedback.reminder")
    assert [(n["sender_org"], n["member_card_no"]) for n in reminders] == [(B, b_cards[0])]


async def test_a_ward_committee_on_the_residence_side_accepts_an_introduction_from_the_khoi(party, accounts):
    ward = await accounts(WARD, "clerk")
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, WARD)
    intro = await push(khoi, introduction(card))
    assert intro["recipient_org"] == WARD
    inbox, _ = await pull_all(ward)
    assert [n["id"] for n in inbox] == [intro["id"]]
    assert (await ward.post(f"{NOTICES}/{intro['id']}/ack")).status_code == 200
    answer = await ward.post(f"{NOTICES}/{intro['id']}/replies", json=accepted("Chi bộ Tổ dân phố số 2"))
    assert answer.status_code == 201, answer.text
    assert answer.json()["recipient_org"] == KHOI
    khoi_inbox, _ = await pull_all(khoi)
    assert [n["kind"] for n in khoi_inbox] == ["member.accepted"]
    member = (await khoi.get(f"{MEMBERS}/{card}")).json()
    assert (member["residence_status"], member["residence_cell"]) == ("accepted", "Chi bộ Tổ dân phố số 2")
    # A district's member may move to the ward: the ward is a residence committee like any district.
    other = await add_member(khoi, "ba-dinh")
    move = {"from_org": "ba-dinh", "to_org": WARD, "moved_on": iso(today())}
    ba_dinh = await party("ba_dinh_system")
    r = await ba_dinh.post(NOTICES, json={"kind": "member.residence_changed", "member_card_no": other, "payload": move})
    assert r.status_code == 201, r.text
    assert r.json()["recipient_org"] == KHOI
    # The Khối moves a member from a district to the ward: both residence committees are told, only the ward where.
    mover = await add_member(khoi, "ba-dinh")
    assert (await khoi.put(f"{MEMBERS}/{mover}", json=member_body(WARD))).status_code == 200
    (to_ward,), _ = await pull_all(ward, kind="member.residence_changed")
    (to_district,), _ = await pull_all(ba_dinh, kind="member.residence_changed")
    assert to_ward["payload"]["to_org"] == to_district["payload"]["to_org"] == WARD
    assert "new_address" in to_ward["payload"] and "new_address" not in to_district["payload"]
    # No move to a committee with no side, nor to one whose term has ended.
    for target in (NO_SIDE, RETIRED):
        r = await ba_dinh.post(
            NOTICES,
            json={"kind": "member.residence_changed", "member_card_no": other, "payload": {**move, "to_org": target}},
        )
        assert_problem(r, 422, "not_a_district")


async def test_a_committee_with_no_side_takes_no_part(party, accounts, registry):
    admin = await party("khoi_admin")
    for body in (
        {"kind": "client", "org_code": NO_SIDE, "roles": ["clerk"]},
        {"kind": "user", "org_code": NO_SIDE, "username": "cb.tham.khao", "roles": ["clerk"]},
    ):
        assert_problem(await admin.post(ACCOUNTS, json=body), 422, "org_not_party")
    assert_problem(
        await admin.post(ACCOUNTS, json={"kind": "client", "org_code": RETIRED, "roles": ["clerk"]}),
        422,
        "org_not_party",
    )
    khoi = await party("khoi_clerk")
    assert_problem(await khoi.put(f"{MEMBERS}/{new_card()}", json=member_body(NO_SIDE)), 422, "not_a_district")
    # The registry shows each committee's side: the workplace side first, then by code.
    listed = (await khoi.get("/api/v1/organizations")).json()["items"]
    assert [o["code"] for o in listed[:2]] == [B, KHOI]
    codes = [o["code"] for o in listed[2:]]
    assert codes == sorted(codes)
    sides = {o["code"]: (o["side"], o["operator"]) for o in listed}
    assert sides[KHOI] == ("workplace", True) and sides[B] == ("workplace", False)
    assert sides[WARD] == ("residence", False) and sides[NO_SIDE] == (None, False)
    workplace = (await khoi.get("/api/v1/organizations", params={"side": "workplace"})).json()["items"]
    assert [o["code"] for o in workplace] == [B, KHOI]
    residence = [
        o["code"] for o in (await khoi.get("/api/v1/organizations", params={"side": "residence"})).json()["items"]
    ]
    assert WARD in residence and "ba-dinh" in residence and NO_SIDE not in residence and len(residence) == 32
    assert_problem(await khoi.get("/api/v1/organizations", params={"side": "nowhere"}), 422, "validation_error")


async def test_a_committee_that_loses_its_side_sees_no_members(party, accounts):
    ward = await accounts(WARD, "clerk")
    card = await add_member(await party("khoi_clerk"), WARD)
    assert [m["party_card_no"] for m in (await ward.get(MEMBERS)).json()["items"]] == [card]
    async with db.sessions() as session:
        await load_registry(session=session, entries=[{**EXTRA_COMMITTEES[1], "side": None}])
        await session.commit()
    assert (await ward.get(MEMBERS)).json()["items"] == []
    assert_problem(await ward.get(f"{MEMBERS}/{card}"), 404, "member_not_found")


async def test_a_registry_entry_with_an_unknown_side_is_refused_and_changes_nothing(party):
    khoi = await party("khoi_clerk")
    before = (await khoi.get("/api/v1/organizations")).json()
    for bad in ({"side": "workplce"}, {"side": "residence", "operator": "yes"}):
        entries = [{"code": "tam-thoi", "kind": "ward", "name": "Tạm thời (kiểm thử)", **bad}]
        async with db.sessions() as session:
            with pytest.raises(ValueError, match="tam-thoi"):
                await load_registry(session=session, entries=entries)
            await session.rollback()
    assert (await khoi.get("/api/v1/organizations")).json() == before
