"""Registry editions: a re-organisation planned and applied as data, on a populated database, through the HTTP API
as the operator's admin calls it and through the operator's command (`member-exchange registry plan|apply`).

The edition is the example shipped in app/data/editions: Ba Đình, Hoàn Kiếm and Tây Hồ end on 1 July 2025 and seven
ward committees take over their members by old ward; wards split between new wards are left out of its mapping,
so members there are reported and left where they are."""

import asyncio
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from jwcrypto import jwk, jws
from sqlalchemy import func, select

from app.infra.clock import today
from app.infra.db import db
from app.models.member import Member
from app.models.notice import Notice
from app.models.registry import MemberReassignment
from app.models.subscription import Delivery, Subscription
from tests import files
from tests.exchange import (
    accepted,
    add_member,
    feedback_given,
    info_request,
    introduction,
    iso,
    member_body,
    pull_all,
    push,
    violation,
)
from tests.helpers import ACCOUNTS, AccountSpec, Party, assert_problem

ROOT = Path(__file__).resolve().parent.parent
EDITION_FILE = ROOT / "app" / "data" / "editions" / "example-2025-07-01-ba-dinh-hoan-kiem-tay-ho.json"
SCRIPT = str(Path(sys.executable).parent / "member-exchange")
PLAN, EDITIONS = "/api/v1/registry/plan", "/api/v1/registry/editions"
NOTICES, ROUNDS = "/api/v1/notices", "/api/v1/feedback-rounds"
RETIRED = ("ba-dinh", "hoan-kiem", "tay-ho")


def sample() -> dict:
    return json.loads(EDITION_FILE.read_text(encoding="utf-8"))


@dataclass
class World:
    """A populated database: who lives where, and the notices still open when the edition comes."""

    cards: dict[str, str]
    notices: dict[str, dict]
    round_id: str
    subscription_id: str


async def populate(party) -> World:
    """Members in the three retired districts (some in wards the example does not map) and in Cầu Giấy; open
    notices to the retired districts (introductions, a violation report, a round's comment requests); notices
    already dealt with; a request from Ba Đình to the Khối; a webhook subscription of Ba Đình."""
    khoi = await party("khoi_officer")
    ba_dinh = await party("ba_dinh_system")
    r = await ba_dinh.post("/api/v1/subscriptions", json={"url": "http://127.0.0.1:9/hook"})
    assert r.status_code == 201, r.text
    subscription_id = r.json()["id"]
    unit = f"so-kiem-thu-{uuid.uuid4().hex[:8]}"
    yes = {"residence_status": "accepted", "residence_cell": "Chi bộ Tổ dân phố số 7"}
    cards: dict[str, str] = {}
    for key, district, ward, extra in (
        ("quan_thanh", "ba-dinh", "Phường Quán Thánh", yes),
        ("cong_vi", "ba-dinh", "Phường Cống Vị", {}),
        ("giang_vo", "ba-dinh", "Phường Giảng Võ", yes),
        ("kim_ma", "ba-dinh", "Phường Kim Mã", {}),  # split between new wards: not in the mapping
        ("quan_thanh_plain", "ba-dinh", "phuong QUAN thanh", {}),  # no diacritics, other case: still Quán Thánh
        ("truc_bach", "ba-dinh", "Phường Trúc Bạch", yes),
        ("hang_bac", "hoan-kiem", "Phường Hàng Bạc", {}),
        ("trang_tien", "hoan-kiem", "Phường Tràng Tiền", {}),  # split: not in the mapping
        ("buoi", "tay-ho", "Phường Bưởi", {}),
        ("dich_vong", "cau-giay", "Phường Dịch Vọng", yes),  # a district the edition leaves alone
    ):
        cards[key] = await add_member(khoi, district, residence_ward=ward, workplace_unit_code=unit, **extra)
    notices = {
        "intro_cong_vi": await push(khoi, introduction(cards["cong_vi"])),
        "intro_kim_ma": await push(khoi, introduction(cards["kim_ma"])),
        "intro_hang_bac": await push(khoi, introduction(cards["hang_bac"])),
        "violation_giang_vo": await push(khoi, violation(cards["giang_vo"])),
    }
    # Dealt with before the edition: acknowledged (with a document), or answered. These stay where they are.
    r = await khoi.post("/api/v1/documents", files={"file": ("bien-ban.pdf", files.pdf())})
    assert r.status_code == 201, r.text
    notices["violation_truc_bach"] = await push(
        khoi, {**violation(cards["truc_bach"]), "document_ids": [r.json()["id"]]}
    )
    assert (await ba_dinh.post(f"{NOTICES}/{notices['violation_truc_bach']['id']}/ack")).status_code == 200
    notices["from_ba_dinh"] = await push(ba_dinh, info_request(cards["quan_thanh"], "Đồng chí còn công tác tại Sở?"))
    # A round of this year's comment requests: Quán Thánh, Giảng Võ, Trúc Bạch (Ba Đình), Dịch Vọng (Cầu Giấy).
    r = await khoi.post(
        ROUNDS, json={"year": today().year, "deadline": iso(today() + timedelta(days=20)), "units": [unit]}
    )
    assert r.status_code == 201, r.text
    round_id = r.json()["id"]
    for _ in range(300):
        progress = (await khoi.get(f"{ROUNDS}/{round_id}")).json()
        if progress["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert progress["status"] == "completed" and progress["totals"]["requested"] == 4, progress
    inbox, _ = await pull_all(ba_dinh, kind="feedback.requested")
    requests = {n["member_card_no"]: n for n in inbox}
    for key in ("quan_thanh", "giang_vo", "truc_bach"):
        notices[f"request_{key}"] = requests[cards[key]]
    # Acknowledged but not answered: still open, so it passes on.
    assert (await ba_dinh.post(f"{NOTICES}/{requests[cards['quan_thanh']]['id']}/ack")).status_code == 200
    return World(cards=cards, notices=notices, round_id=round_id, subscription_id=subscription_id)


async def new_client(client, party, org: str) -> Party:
    """A system account of `org` made by the Khối's admin over the API, logged in."""
    admin = await party("khoi_admin")
    r = await admin.post("/api/v1/accounts", json={"kind": "client", "org_code": org, "roles": ["clerk"]})
    assert r.status_code == 201, r.text
    spec = AccountSpec(r.json()["login"], "client", org, ("clerk",), r.json()["secret"])
    form = {"grant_type": "client_credentials", "client_id": spec.login, "client_secret": spec.secret}
    token = await client.post("/api/v1/auth/token", data=form)
    assert token.status_code == 200, token.text
    return Party(client, spec, token.json()["access_token"])


def _pairs(result: dict) -> dict[tuple[str, str], tuple[int, int]]:
    return {(x["from_org"], x["to_org"]): (x["members"], x["notices"]) for x in result["reassignments"]}


EXPECTED_PAIRS = {
    ("ba-dinh", "phuong-ba-dinh"): (3, 2),  # Quán Thánh (twice spelled), Trúc Bạch; two comment requests
    ("ba-dinh", "phuong-ngoc-ha"): (1, 1),  # Cống Vị; its introduction
    ("ba-dinh", "phuong-giang-vo"): (1, 2),  # Giảng Võ; the violation report and a comment request
    ("hoan-kiem", "phuong-hoan-kiem"): (1, 1),  # Hàng Bạc; its introduction
    ("hoan-kiem", "phuong-cua-nam"): (0, 0),
    ("tay-ho", "phuong-tay-ho"): (1, 0),  # Bưởi
    ("tay-ho", "phuong-phu-thuong"): (0, 0),
}


async def _members_where(cards: dict[str, str]) -> dict[str, str]:
    async with db.sessions() as session:
        rows = await session.execute(
            select(Member.party_card_no, Member.residence_org).where(Member.party_card_no.in_(list(cards.values())))
        )
        where = dict(rows.all())
    return {key: where[card] for key, card in cards.items()}


async def _count(model, *where) -> int:
    async with db.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def test_plan_shows_what_would_change_and_apply_does_exactly_that_once(client, party):
    world = await populate(party)
    admin = await party("khoi_admin")
    retired_client = await party("ba_dinh_system")  # a token issued before the change
    before = await _members_where(world.cards)
    notices_before = await _count(Notice)

    r = await admin.post(PLAN, json=sample())
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["already_applied"] is False and plan["example"] is True
    assert sorted(plan["added"]) == sorted(c["code"] for c in sample()["committees"]) and plan["updated"] == []
    assert {c["code"]: c["successors"] for c in plan["retired"]} == {
        r["code"]: r["successors"] for r in sample()["retire"]
    }
    assert _pairs(plan) == EXPECTED_PAIRS
    assert plan["members_reassigned"] == 7 and plan["notices_transferred"] == 6
    assert plan["notices_left"] == 1  # the introduction of the member in Kim Mã stays with Ba Đình
    ba_dinh_sample = next(x for x in plan["reassignments"] if x["to_org"] == "phuong-ba-dinh")["sample"]
    assert sorted(ba_dinh_sample) == sorted(world.cards[k] for k in ("quan_thanh", "quan_thanh_plain", "truc_bach"))
    assert sorted((u["party_card_no"], u["committee"], u["residence_ward"]) for u in plan["unmappable"]) == sorted(
        [
            (world.cards["kim_ma"], "ba-dinh", "Phường Kim Mã"),
            (world.cards["trang_tien"], "hoan-kiem", "Phường Tràng Tiền"),
        ]
    )
    assert all(u["full_name"] for u in plan["unmappable"])
    retired_logins = sorted(a.login for a in ACCOUNTS.values() if a.org in RETIRED)
    assert sorted(a["login"] for a in plan["accounts_retired"]) == retired_logins
    assert [s["id"] for s in plan["subscriptions_stopped"]] == [world.subscription_id]
    # A plan writes nothing.
    assert await _members_where(world.cards) == before and await _count(Notice) == notices_before
    assert (await admin.get("/api/v1/organizations/phuong-ba-dinh")).status_code == 404

    r = await admin.post(EDITIONS, json=sample())
    assert r.status_code == 201, r.text
    applied = r.json()
    ignore = {"already_applied", "applied_at", "applied_by"}
    assert {k: v for k, v in applied.items() if k not in ignore} == {k: v for k, v in plan.items() if k not in ignore}
    assert applied["applied_by"] == ACCOUNTS["khoi_admin"].login

    # Members moved by their ward; the unmappable ones and Cầu Giấy's stayed.
    after = await _members_where(world.cards)
    assert after == {
        **before,
        "quan_thanh": "phuong-ba-dinh",
        "quan_thanh_plain": "phuong-ba-dinh",
        "truc_bach": "phuong-ba-dinh",
        "cong_vi": "phuong-ngoc-ha",
        "giang_vo": "phuong-giang-vo",
        "hang_bac": "phuong-hoan-kiem",
        "buoi": "phuong-tay-ho",
    }
    assert after["kim_ma"] == "ba-dinh" and after["trang_tien"] == "hoan-kiem" and after["dich_vong"] == "cau-giay"
    assert await _count(MemberReassignment) == 7
    assert await _count(Notice) == notices_before + 6  # one transfer per open notice, nothing else

    # The registry: the districts ended on 1 July 2025 with their successors; the wards began then.
    khoi = await party("khoi_clerk")
    ba_dinh = (await khoi.get("/api/v1/organizations/ba-dinh")).json()
    assert ba_dinh["active"] is False and ba_dinh["valid_to"] == "2025-07-01"
    assert ba_dinh["successors"] == ["phuong-ba-dinh", "phuong-giang-vo", "phuong-ngoc-ha"]
    ward = (await khoi.get("/api/v1/organizations/phuong-ba-dinh")).json()
    assert ward["active"] is True and ward["valid_from"] == "2025-07-01" and ward["side"] == "residence"

    # Ba Đình's accounts stop working: its live token and a new login are refused with the documented code.
    assert_problem(await retired_client.get(f"{NOTICES}/inbox"), 401, "organization_retired")
    spec = ACCOUNTS["ba_dinh_system"]
    form = {"grant_type": "client_credentials", "client_id": spec.login, "client_secret": spec.secret}
    assert_problem(await client.post("/api/v1/auth/token", data=form), 401, "organization_retired")
    staff = ACCOUNTS["ba_dinh_admin"]
    form = {"grant_type": "password", "username": staff.login, "password": staff.secret}
    assert_problem(await client.post("/api/v1/auth/token", data=form), 401, "organization_retired")
    form["password"] = "wrong"  # a wrong password learns nothing about the committee
    assert_problem(await client.post("/api/v1/auth/token", data=form), 401, "invalid_grant")

    # Its webhook subscription stopped, and what it still had to deliver is cancelled.
    async with db.sessions() as session:
        sub = await session.get(Subscription, uuid.UUID(world.subscription_id))
        assert sub.active is False and sub.disabled_reason == "organization_retired"
        pending = await session.scalar(
            select(func.count()).where(Delivery.subscription_id == sub.id, Delivery.status == "pending")
        )
        assert pending == 0

    # The same edition again changes nothing, and says so; each request leaves its one audit entry.
    r = await admin.post(EDITIONS, json=sample())
    assert r.status_code == 200, r.text
    again = r.json()
    assert again["already_applied"] is True
    assert {k: v for k, v in again.items() if k not in ignore} == {k: v for k, v in applied.items() if k not in ignore}
    assert await _count(Notice) == notices_before + 6 and await _count(MemberReassignment) == 7
    assert await _members_where(world.cards) == after
    replan = (await admin.post(PLAN, json=sample())).json()
    assert replan["already_applied"] is True and replan["members_reassigned"] == 7
    listed = (await admin.get(EDITIONS)).json()["items"]
    assert [e["edition"] for e in listed] == [sample()["edition"]]
    auditor = await party("khoi_auditor")
    entries = (await auditor.get("/api/v1/audit/entries", params={"action": "registry.apply"})).json()["items"]
    assert len(entries) == 2 and {e["http_status"] for e in entries} == {200, 201}
    assert all(e["resource_id"] == sample()["edition"] and e["outcome"] == "allowed" for e in entries)
    first = next(e for e in entries if e["http_status"] == 201)
    assert first["details"]["members_reassigned"] == 7 and first["details"]["notices_transferred"] == 6
    assert "Kim Mã" not in json.dumps(entries, ensure_ascii=False)  # counts, never names or wards

    # Same id, other content: refused.
    other = sample()
    other["description"] = "Một nội dung khác với cùng mã ấn bản."
    assert_problem(await admin.post(EDITIONS, json=other), 409, "edition_conflict")
    assert_problem(await admin.post(PLAN, json=other), 409, "edition_conflict")

    # The audit chain still verifies, with the operator's command.
    verified = _cli("verify-audit")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"] is True


async def test_the_successors_take_over_the_open_notices_and_the_history_of_their_members(client, party):
    world = await populate(party)
    admin = await party("khoi_admin")
    khoi = await party("khoi_officer")
    signed_before = {k: n["signature"] for k, n in world.notices.items()}
    assert (await admin.post(EDITIONS, json=sample())).status_code == 201
    ward = await new_client(client, party, "phuong-ba-dinh")
    giang_vo = await new_client(client, party, "phuong-giang-vo")
    ngoc_ha = await new_client(client, party, "phuong-ngoc-ha")

    # Each successor pulls its transfers once: a second pull from its cursor returns none of them.
    transfers, cursor = await pull_all(ward)
    assert [n["kind"] for n in transfers] == ["notice.transferred"] * 2
    originals = {n["payload"]["original"]["id"] for n in transfers}
    assert originals == {world.notices["request_quan_thanh"]["id"], world.notices["request_truc_bach"]["id"]}
    again, _ = await pull_all(ward, cursor=cursor)
    assert again == []
    for n in transfers:
        original = next(o for o in world.notices.values() if o["id"] == n["payload"]["original"]["id"])
        assert n["sender_org"] == "ba-dinh" and n["recipient_org"] == "phuong-ba-dinh"
        assert n["in_reply_to"] == original["id"] and n["thread_id"] == original["thread_id"]
        assert n["member_card_no"] == original["member_card_no"] and n["due_date"] == original["due_date"]
        assert n["payload"]["from_org"] == "ba-dinh" and n["payload"]["to_org"] == "phuong-ba-dinh"
        assert n["payload"]["edition"] == sample()["edition"]
        copy = n["payload"]["original"]
        assert (copy["kind"], copy["sender_org"], copy["payload"]) == (
            original["kind"],
            original["sender_org"],
            original["payload"],
        )
        content = json.loads(await _verified(client, n))  # signed like any notice
        assert content["id"] == n["id"] and content["payload"] == n["payload"]
    giang_vo_inbox, _ = await pull_all(giang_vo)
    assert sorted(n["payload"]["original"]["kind"] for n in giang_vo_inbox) == [
        "feedback.requested",
        "violation.reported",
    ]
    ngoc_ha_inbox, _ = await pull_all(ngoc_ha)
    assert [n["payload"]["original"]["id"] for n in ngoc_ha_inbox] == [world.notices["intro_cong_vi"]["id"]]

    # The originals are unchanged: same signed content, same signature.
    for key, signature in signed_before.items():
        stored = (await khoi.get(f"{NOTICES}/{world.notices[key]['id']}")).json()
        assert stored["signature"] == signature and stored["payload"] == world.notices[key]["payload"]
        assert stored["recipient_org"] == world.notices[key]["recipient_org"]

    # Ngọc Hà acknowledges its transfer and accepts the member it introduces: the answer goes to the Khối, in the
    # original's thread, as an answer to the original, which is answered now (and so is the transfer).
    transfer = ngoc_ha_inbox[0]
    assert (await ngoc_ha.post(f"{NOTICES}/{transfer['id']}/ack")).json()["status"] == "acknowledged"
    intro = world.notices["intro_cong_vi"]
    r = await ngoc_ha.post(f"{NOTICES}/{transfer['id']}/replies", json=accepted())
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["recipient_org"] == "khoi-cqtp" and answer["sender_org"] == "phuong-ngoc-ha"
    assert answer["in_reply_to"] == intro["id"] and answer["thread_id"] == intro["thread_id"]
    khoi_inbox, _ = await pull_all(khoi, kind="member.accepted")
    assert [n["id"] for n in khoi_inbox] == [answer["id"]]
    original = (await khoi.get(f"{NOTICES}/{intro['id']}")).json()
    assert original["status"] == "answered" and original["acknowledged_at"] is not None
    assert [n["kind"] for n in original["thread"]] == ["member.introduced", "notice.transferred", "member.accepted"]
    assert (await ngoc_ha.get(f"{NOTICES}/{transfer['id']}")).json()["status"] == "answered"
    assert (await khoi.get(f"/api/v1/members/{world.cards['cong_vi']}")).json()["residence_status"] == "accepted"
    assert_problem(await ngoc_ha.post(f"{NOTICES}/{transfer['id']}/replies", json=accepted()), 409, "already_answered")

    # A reply is checked against the original's kind.
    request = next(n for n in transfers if n["in_reply_to"] == world.notices["request_quan_thanh"]["id"])
    assert_problem(await ward.post(f"{NOTICES}/{request['id']}/replies", json=accepted()), 422, "reply_kind_mismatch")
    r = await ward.post(f"{NOTICES}/{request['id']}/replies", json=feedback_given(today().year))
    assert r.status_code == 201, r.text
    assert r.json()["recipient_org"] == "khoi-cqtp" and r.json()["in_reply_to"] == request["in_reply_to"]

    # The round's progress shows the retired district beside its successors, with the answer counted.
    progress = (await khoi.get(f"{ROUNDS}/{world.round_id}")).json()
    rows = {d["district"]: d for d in progress["by_district"]}
    assert rows["ba-dinh"]["successors"] == ["phuong-ba-dinh", "phuong-giang-vo", "phuong-ngoc-ha"]
    assert rows["ba-dinh"]["answered"] == 1 and rows["cau-giay"]["successors"] == []
    # A successor sees its part of the round: the requests about its members.
    mine = (await ward.get(f"{ROUNDS}/{world.round_id}")).json()
    assert mine["totals"]["requested"] == 2 and mine["totals"]["answered"] == 1

    # The history stays readable to the successor for its members: the violation report Ba Đình acknowledged
    # before the change (and the document it carries), but not to another successor, nor for a member the
    # successor does not hold.
    history = world.notices["violation_truc_bach"]
    r = await ward.get(f"{NOTICES}/{history['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["recipient_org"] == "ba-dinh" and r.json()["status"] == "acknowledged"
    document_id = history["documents"][0]["id"]
    assert (await ward.get(f"/api/v1/documents/{document_id}")).status_code == 200
    assert_problem(await ngoc_ha.get(f"{NOTICES}/{history['id']}"), 404, "notice_not_found")
    assert_problem(await ngoc_ha.get(f"/api/v1/documents/{document_id}"), 404)
    assert_problem(await ward.get(f"{NOTICES}/{world.notices['intro_kim_ma']['id']}"), 404, "notice_not_found")
    cau_giay = await party("cau_giay_system")
    assert_problem(await cau_giay.get(f"{NOTICES}/{history['id']}"), 404, "notice_not_found")
    # Reading the history is not delivery: the successor's own inbox still holds only its transfers.
    assert (await pull_all(ward, cursor=cursor))[0] == []

    # A request Ba Đình sent before the change is answered to its successor: the member's ward committee now.
    r = await khoi.post(
        f"{NOTICES}/{world.notices['from_ba_dinh']['id']}/replies",
        json={"kind": "info.provided", "payload": {"answer": "Đồng chí vẫn công tác tại Sở."}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["recipient_org"] == "phuong-ba-dinh"
    assert [n["id"] for n in (await pull_all(ward, cursor=cursor))[0]] == [r.json()["id"]]

    # Reconciliation: the Khối sees where its open notices went; the successor what it still has to handle.
    report = (await khoi.get("/api/v1/reports/reconciliation", params={"days": 1})).json()
    by_notice = {i["notice_id"]: i for i in report["items"]}
    assert by_notice[world.notices["request_giang_vo"]["id"]]["transferred_to"] == "phuong-giang-vo"
    assert by_notice[world.notices["request_truc_bach"]["id"]]["transferred_to"] == "phuong-ba-dinh"
    assert world.notices["request_quan_thanh"]["id"] not in by_notice  # answered by the successor
    request_elsewhere = next(i for i in report["items"] if i["member_card_no"] == world.cards["dich_vong"])
    assert request_elsewhere["transferred_to"] is None  # Cầu Giấy's stays Cầu Giấy's
    csv_text = (await khoi.get("/api/v1/reports/reconciliation", params={"format": "csv"})).content.decode("utf-8-sig")
    assert "Đã chuyển cho tổ chức kế tục" in csv_text.splitlines()[0] and "phuong-giang-vo" in csv_text
    theirs = (await giang_vo.get("/api/v1/reports/reconciliation")).json()
    assert theirs["counts"]["transferred_open"] == 2
    assert {i["sender_org"] for i in theirs["items"] if i["category"] == "transferred_open"} == {"ba-dinh"}


async def _verified(client, notice: dict) -> bytes:
    keys = jwk.JWKSet.from_json((await client.get("/.well-known/jwks.json")).text)
    token = jws.JWS()
    token.deserialize(notice["signature"])
    assert token.jose_header["typ"] == "mx-notice+jws"
    token.verify(keys.get_key(token.jose_header["kid"]), alg="ES256")
    return token.payload


async def test_the_khoi_and_a_new_ward_committee_exchange_a_notice_end_to_end(client, party):
    world = await populate(party)
    admin = await party("khoi_admin")
    assert (await admin.post(EDITIONS, json=sample())).status_code == 201
    khoi = await party("khoi_officer")
    ward = await new_client(client, party, "phuong-ba-dinh")
    _, cursor = await pull_all(ward)  # the transfers

    # The Khối writes about a member who lives in the ward now: the ward committee is the recipient.
    card = world.cards["quan_thanh"]
    sent = await push(khoi, {"kind": "discipline.decided", **_discipline(card)})
    assert sent["recipient_org"] == "phuong-ba-dinh"
    inbox, cursor = await pull_all(ward, cursor=cursor)
    assert [n["id"] for n in inbox] == [sent["id"]]
    assert (await ward.post(f"{NOTICES}/{sent['id']}/ack")).status_code == 200
    question = {k: v for k, v in info_request(card, "Đề nghị gửi quyết định kỷ luật.").items() if k != "member_card_no"}
    r = await ward.post(f"{NOTICES}/{sent['id']}/replies", json=question)
    assert r.status_code == 201, r.text
    assert r.json()["recipient_org"] == "khoi-cqtp"
    khoi_inbox, _ = await pull_all(khoi, kind="info.requested")
    assert r.json()["id"] in [n["id"] for n in khoi_inbox]

    # The ward reports about its member on its own: it goes to the member's workplace committee.
    report = await push(ward, violation(card))
    assert report["sender_org"] == "phuong-ba-dinh" and report["recipient_org"] == "khoi-cqtp"
    assert (await khoi.get(f"{NOTICES}/{report['id']}")).status_code == 200
    # ...and not about a member it does not hold (one still registered with the retired district).
    kim_ma = world.cards["kim_ma"]
    assert_problem(await ward.post(NOTICES, json=violation(kim_ma)), 404, "member_not_found")

    # Nothing more goes to the retired district: the Khối is told to place the member it could not map first...
    to_ba_dinh = await _count(Notice, Notice.recipient_org == "ba-dinh")
    assert_problem(await khoi.post(NOTICES, json=violation(kim_ma)), 422, "recipient_retired")
    # ...and when it does, only the new committee hears of the move.
    r = await khoi.put(
        f"/api/v1/members/{kim_ma}",
        json=member_body("phuong-giang-vo", residence_ward="Phường Giảng Võ", residence_since=iso(today())),
    )
    assert r.status_code == 200, r.text
    giang_vo = await new_client(client, party, "phuong-giang-vo")
    moves = [n for n in (await pull_all(giang_vo, kind="member.residence_changed"))[0] if n["member_card_no"] == kim_ma]
    assert [(n["payload"]["from_org"], n["payload"]["to_org"]) for n in moves] == [("ba-dinh", "phuong-giang-vo")]
    assert await _count(Notice, Notice.recipient_org == "ba-dinh") == to_ba_dinh
    assert (await push(khoi, violation(kim_ma)))["recipient_org"] == "phuong-giang-vo"


def _discipline(card: str) -> dict:
    return {
        "member_card_no": card,
        "payload": {
            "form": "reprimand",
            "decision_no": "45-QĐ/ĐUK",
            "decided_on": iso(today()),
            "authority": "Ban Thường vụ Đảng ủy Khối",
        },
    }


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The operator's command against the test run's database."""
    env = {**os.environ, "MX_LOG_LEVEL": "WARNING"}
    return subprocess.run([SCRIPT, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


async def test_the_operator_command_plans_and_applies_with_one_audit_entry_each(client, party):
    world = await populate(party)
    admin = await party("khoi_admin")
    api_plan = (await admin.post(PLAN, json=sample())).json()

    planned = await asyncio.to_thread(_cli, "registry", "plan", str(EDITION_FILE))
    assert planned.returncode == 0, planned.stderr
    cli_plan = json.loads(planned.stdout)
    assert cli_plan == api_plan
    assert await _count(MemberReassignment) == 0  # a plan writes nothing

    applied = await asyncio.to_thread(_cli, "registry", "apply", str(EDITION_FILE))
    assert applied.returncode == 0, applied.stderr
    result = json.loads(applied.stdout)
    assert result["already_applied"] is False and result["applied_by"] == "member-exchange"
    assert _pairs(result) == EXPECTED_PAIRS and result["unmappable"] == api_plan["unmappable"]
    assert (await _members_where(world.cards))["cong_vi"] == "phuong-ngoc-ha"

    again = await asyncio.to_thread(_cli, "registry", "apply", str(EDITION_FILE))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["already_applied"] is True
    assert await _count(MemberReassignment) == 7

    auditor = await party("khoi_auditor")
    entries = (await auditor.get("/api/v1/audit/entries", params={"actor": "member-exchange", "limit": 50})).json()
    by_action = sorted((e["action"], e["details"]["already_applied"]) for e in entries["items"])
    assert by_action == [("registry.apply", False), ("registry.apply", True), ("registry.plan", False)]

    # The command numbered its transfers: a successor pulls them at once, with no service process running.
    ngoc_ha = await new_client(client, party, "phuong-ngoc-ha")
    inbox, _ = await pull_all(ngoc_ha)
    assert [n["payload"]["original"]["id"] for n in inbox] == [world.notices["intro_cong_vi"]["id"]]

    verified = await asyncio.to_thread(_cli, "verify-audit")
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_the_operator_command_explains_a_bad_file_and_a_refused_edition(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"edition": "x", "effective": "2025-07-01"', encoding="utf-8")
    result = await asyncio.to_thread(_cli, "registry", "plan", str(broken))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "not a JSON file" in result.stderr and len(result.stderr.strip().splitlines()) == 1

    unknown_field = tmp_path / "unknown.json"
    unknown_field.write_text(json.dumps({**sample(), "retired": []}), encoding="utf-8")
    result = await asyncio.to_thread(_cli, "registry", "plan", str(unknown_field))
    assert result.returncode == 2 and "retired" in result.stderr and "Traceback" not in result.stderr

    text = json.dumps(sample(), ensure_ascii=False)
    twice = text.replace(
        '"Phường Trúc Bạch": "phuong-ba-dinh"',
        '"Phường Trúc Bạch": "phuong-ba-dinh", "Phường Trúc Bạch": "phuong-ngoc-ha"',
    )
    assert twice != text
    (tmp_path / "twice.json").write_text(twice, encoding="utf-8")
    result = await asyncio.to_thread(_cli, "registry", "plan", str(tmp_path / "twice.json"))
    assert result.returncode == 2 and "'Phường Trúc Bạch' is written twice" in result.stderr

    bad = sample()
    bad["retire"][0]["successors"] = ["khoi-cqtp"]
    bad["retire"][0]["wards"] = {}
    refused = tmp_path / "refused.json"
    refused.write_text(json.dumps(bad, ensure_ascii=False), encoding="utf-8")
    result = await asyncio.to_thread(_cli, "registry", "apply", str(refused))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "edition_side_mismatch" in result.stderr
    assert await _count(MemberReassignment) == 0


def _edit(**changes) -> dict:
    edition = sample()
    for path, value in changes.items():
        target = edition
        *parents, last = path.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value
    return edition


def _retire(*entries: dict) -> dict:
    return {**sample(), "retire": list(entries)}


INVALID = {
    "edition_unknown_committee": _retire({"code": "quan-khong-co", "successors": ["phuong-ba-dinh"]}),
    "edition_unknown_successor": _retire({"code": "ba-dinh", "successors": ["phuong-khong-co"]}),
    "edition_side_mismatch": _retire({"code": "ba-dinh", "successors": ["khoi-cqtp"]}),
    "edition_cycle": _retire(
        {"code": "ba-dinh", "successors": ["hoan-kiem"]}, {"code": "hoan-kiem", "successors": ["ba-dinh"]}
    ),
    "edition_successor_retired": _retire(
        {"code": "ba-dinh", "successors": ["hoan-kiem"]}, {"code": "hoan-kiem", "successors": ["phuong-hoan-kiem"]}
    ),
    "edition_duplicate_code": {**sample(), "committees": [*sample()["committees"], sample()["committees"][0]]},
    "edition_mapping_invalid": _edit(retire__0__wards={}),
    "edition_retires_operator": _retire({"code": "khoi-cqtp", "successors": ["phuong-ba-dinh"]}),
}


@pytest.mark.parametrize("code", sorted(INVALID))
async def test_an_invalid_edition_is_refused_with_its_code_and_changes_nothing(party, code):
    admin = await party("khoi_admin")
    body = assert_problem(await admin.post(PLAN, json=INVALID[code]), 422, code)
    assert body["detail"] and not body["detail"].isascii()  # Vietnamese
    assert_problem(await admin.post(EDITIONS, json=INVALID[code]), 422, code)
    assert (await admin.get(EDITIONS)).json()["items"] == []


async def test_mapping_mistakes_are_named(party):
    admin = await party("khoi_admin")
    wrong_target = _edit(retire__0__wards={"Phường Quán Thánh": "phuong-tay-ho"})
    body = assert_problem(await admin.post(PLAN, json=wrong_target), 422, "edition_mapping_invalid")
    assert "phuong-tay-ho" in body["detail"]
    same_ward_twice = _edit(
        retire__0__wards={"Phường Quán Thánh": "phuong-ba-dinh", "phuong quan thanh": "phuong-ngoc-ha"}
    )
    assert_problem(await admin.post(PLAN, json=same_ward_twice), 422, "edition_mapping_invalid")
    one_successor_with_wards = _retire(
        {"code": "ba-dinh", "successors": ["phuong-ba-dinh"], "wards": {"Phường Quán Thánh": "phuong-ba-dinh"}}
    )
    assert_problem(await admin.post(PLAN, json=one_successor_with_wards), 422, "edition_mapping_invalid")
    not_json_schema = {**sample(), "retire": [{"code": "ba-dinh", "successors": []}]}
    assert_problem(await admin.post(PLAN, json=not_json_schema), 422, "validation_error")


async def test_an_edition_applies_on_or_after_its_day_and_a_committee_retires_once(party, monkeypatch):
    admin = await party("khoi_admin")
    future = {**sample(), "edition": "ba-dinh-sau-nay", "effective": iso(today() + timedelta(days=10))}
    assert (await admin.post(PLAN, json=future)).status_code == 200  # planning ahead is fine
    assert_problem(await admin.post(EDITIONS, json=future), 422, "edition_not_yet_effective")

    from app.infra.config import settings

    monkeypatch.setitem(settings.__dict__, "environment", "production")
    assert_problem(await admin.post(EDITIONS, json=sample()), 422, "edition_is_example")
    monkeypatch.undo()

    assert (await admin.post(EDITIONS, json=sample())).status_code == 201
    later = _retire({"code": "ba-dinh", "successors": ["phuong-ba-dinh"]})
    later["edition"] = "lan-hai"
    later["committees"] = []
    assert_problem(await admin.post(PLAN, json=later), 422, "edition_already_retired")


async def test_a_later_edition_passes_history_and_open_transfers_on(client, party):
    """A successor retired in turn: its own successor reads the first committee's history and gets the transfers
    still open, carrying the original notices."""
    world = await populate(party)
    admin = await party("khoi_admin")
    assert (await admin.post(EDITIONS, json=sample())).status_code == 201
    merged = {
        "edition": "vi-du-2025-08-01-gop-phuong",
        "effective": "2025-08-01",
        "description": "VÍ DỤ: gộp phường Ngọc Hà vào phường Ba Đình (không phải dữ liệu thật).",
        "example": True,
        "retire": [{"code": "phuong-ngoc-ha", "successors": ["phuong-ba-dinh"]}],
    }
    plan = (await admin.post(PLAN, json=merged)).json()
    assert plan["members_reassigned"] == 1 and plan["notices_transferred"] == 1
    assert (await admin.post(EDITIONS, json=merged)).status_code == 201
    ward = await new_client(client, party, "phuong-ba-dinh")
    inbox, _ = await pull_all(ward)
    passed_on = [n for n in inbox if n["sender_org"] == "phuong-ngoc-ha"]
    assert [n["payload"]["original"]["id"] for n in passed_on] == [world.notices["intro_cong_vi"]["id"]]
    assert passed_on[0]["in_reply_to"] == world.notices["intro_cong_vi"]["id"]
    # The first district's notice about that member: readable through both editions.
    r = await ward.get(f"{NOTICES}/{world.notices['intro_cong_vi']['id']}")
    assert r.status_code == 200 and r.json()["recipient_org"] == "ba-dinh"
    r = await ward.post(f"{NOTICES}/{passed_on[0]['id']}/replies", json=accepted())
    assert r.status_code == 201 and r.json()["recipient_org"] == "khoi-cqtp"


@pytest.mark.parametrize("caller", ["ba_dinh_admin", "cau_giay_admin"])
async def test_only_the_operators_admins_plan_and_apply_editions(party, caller):
    admin = await party(caller)
    assert_problem(await admin.post(PLAN, json=sample()), 403, "operator_only")
    assert_problem(await admin.post(EDITIONS, json=sample()), 403, "operator_only")
    assert_problem(await admin.get(EDITIONS), 403, "operator_only")
    assert await _count(MemberReassignment) == 0
    assert (await (await party("khoi_clerk")).get("/api/v1/organizations/ba-dinh")).json()["active"] is True


async def test_an_edition_waits_for_a_round_that_is_still_creating_its_requests(party):
    from sqlalchemy import update

    from app.models.feedback import FeedbackRound

    khoi = await party("khoi_officer")
    card = await add_member(khoi, "ba-dinh", residence_ward="Phường Quán Thánh")
    assert card
    r = await khoi.post(ROUNDS, json={"year": today().year, "deadline": iso(today() + timedelta(days=20))})
    assert r.status_code == 201, r.text
    for _ in range(300):
        if (await khoi.get(f"{ROUNDS}/{r.json()['id']}")).json()["status"] != "running":
            break
        await asyncio.sleep(0.1)
    async with db.sessions() as session:  # as if its process were still writing a batch
        await session.execute(update(FeedbackRound).values(status="running"))
        await session.commit()
    admin = await party("khoi_admin")
    assert_problem(await admin.post(EDITIONS, json=sample()), 409, "edition_round_running")
    assert await _count(MemberReassignment) == 0


async def test_reminders_of_a_passed_on_request_go_to_the_successor(party):
    from sqlalchemy import update

    from app.services import feedback

    world = await populate(party)
    admin = await party("khoi_admin")
    assert (await admin.post(EDITIONS, json=sample())).status_code == 201
    async with db.sessions() as session:  # the deadline passes
        await session.execute(
            update(Notice).where(Notice.kind == "feedback.requested").values(due_date=today() - timedelta(days=2))
        )
        await session.commit()
    async with db.sessions() as session:
        sent = await feedback.send_reminders(session=session)
        await session.commit()
    assert sent == 4
    async with db.sessions() as session:
        reminders = dict(
            (
                await session.execute(
                    select(Notice.member_card_no, Notice.recipient_org).where(Notice.kind == "feedback.reminder")
                )
            ).all()
        )
    assert reminders == {
        world.cards["quan_thanh"]: "phuong-ba-dinh",
        world.cards["truc_bach"]: "phuong-ba-dinh",
        world.cards["giang_vo"]: "phuong-giang-vo",
        world.cards["dich_vong"]: "cau-giay",
    }


async def test_nothing_new_reaches_a_retired_committee_and_a_restart_keeps_the_edition(party):
    from app.services.organizations import load_registry

    khoi, ba_dinh = await party("khoi_officer"), await party("ba_dinh_system")
    unit = f"so-kiem-thu-{uuid.uuid4().hex[:8]}"
    ready = {"residence_status": "accepted", "residence_cell": "Chi bộ Tổ dân phố số 3", "workplace_unit_code": unit}
    kim_ma = await add_member(khoi, "ba-dinh", residence_ward="Phường Kim Mã", **ready)  # the example cannot map it
    question = await push(ba_dinh, info_request(kim_ma, "Đồng chí còn công tác tại Sở?"))
    renamed = {"code": "cau-giay", "kind": "district", "side": "residence", "name": "Quận ủy Cầu Giấy (đổi tên)"}
    edition = {**sample(), "committees": [*sample()["committees"], renamed]}
    assert (await (await party("khoi_admin")).post(EDITIONS, json=edition)).status_code == 201
    # The Khối's answer would go to the retired district, where nobody can read it: refused, as a push is.
    answer = {"kind": "info.provided", "payload": {"answer": "Vẫn công tác tại Sở."}}
    assert_problem(await khoi.post(f"{NOTICES}/{question['id']}/replies", json=answer), 422, "recipient_retired")
    assert_problem(await khoi.post(NOTICES, json=violation(kim_ma)), 422, "recipient_retired")
    # A comment round skips the member, with the reason, and sends nothing to the retired district.
    r = await khoi.post(
        ROUNDS, json={"year": today().year, "deadline": iso(today() + timedelta(days=20)), "units": [unit]}
    )
    assert r.status_code == 201, r.text
    for _ in range(300):
        progress = (await khoi.get(f"{ROUNDS}/{r.json()['id']}")).json()
        if progress["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert progress["totals"] == {"requested": 0, "answered": 0, "overdue": 0, "skipped": 1}, progress
    assert progress["skipped_reasons"] == [{"reason": "residence_committee_retired", "count": 1}]
    assert await _count(Notice, Notice.recipient_org == "ba-dinh", Notice.kind == "feedback.requested") == 0
    # Once the Khối records where the member lives now, both go through, to the new committee.
    moved = member_body("phuong-giang-vo", residence_ward="Phường Giảng Võ", **ready)
    assert (await khoi.put(f"/api/v1/members/{kim_ma}", json=moved)).status_code == 200
    r = await khoi.post(f"{NOTICES}/{question['id']}/replies", json=answer)
    assert r.status_code == 201 and r.json()["recipient_org"] == "phuong-giang-vo", r.text
    # A start of the service loads the shipped registry again: it adds what is missing, never undoes the edition.
    async with db.sessions() as session:
        await load_registry(session=session)
        await session.commit()
    cau_giay = (await khoi.get("/api/v1/organizations/cau-giay")).json()
    ba_dinh_now = (await khoi.get("/api/v1/organizations/ba-dinh")).json()
    assert cau_giay["name"] == "Quận ủy Cầu Giấy (đổi tên)"
    assert ba_dinh_now["active"] is False and ba_dinh_now["valid_to"] == sample()["effective"]
