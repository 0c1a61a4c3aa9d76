"""Scoping matrix: a third committee sees nothing of an exchange between the Khối and Ba Đình."""

import pytest

from tests.exchange import accepted, add_member, introduction, member_body, pull_all, push, violation
from tests.helpers import assert_problem

NOTICES = "/api/v1/notices"


@pytest.fixture
async def exchange(party):
    """The Khối and Ba Đình exchange about a member living in Ba Đình, in both directions."""
    khoi = await party("khoi_clerk")
    ba_dinh = await party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh")
    down = await push(khoi, introduction(card))
    up = await push(ba_dinh, violation(card))
    return {"card": card, "down": down["id"], "up": up["id"]}


@pytest.mark.parametrize("outsider", ["hoan_kiem_system", "cau_giay_system"])
async def test_a_third_district_gets_404_or_empty_lists_on_every_exchange_endpoint(party, exchange, outsider):
    other = await party(outsider)
    card, down, up = exchange["card"], exchange["down"], exchange["up"]
    # Members
    assert_problem(await other.get(f"/api/v1/members/{card}"), 404, "member_not_found")
    assert (await other.get("/api/v1/members")).json()["items"] == []
    assert (await other.get("/api/v1/members", params={"card_no": card})).json()["items"] == []
    assert (await other.get("/api/v1/members", params={"residence_org": "ba-dinh"})).json()["items"] == []
    assert_problem(await other.put(f"/api/v1/members/{card}", json=member_body("ba-dinh")), 403, "khoi_only")
    # Notices, one by one and in lists, with every filter
    for notice_id in (down, up):
        assert_problem(await other.get(f"{NOTICES}/{notice_id}"), 404, "notice_not_found")
        assert_problem(await other.post(f"{NOTICES}/{notice_id}/ack"), 404, "notice_not_found")
        assert_problem(await other.post(f"{NOTICES}/{notice_id}/replies", json=accepted()), 404, "notice_not_found")
    for box in ("inbox", "outbox"):
        for params in ({}, {"member": card}, {"kind": "member.introduced"}, {"status": "sent"}):
            items, _ = await pull_all(other, box=box, **params)
            assert items == [], (box, params)
        r = await other.get(f"{NOTICES}/{box}", params=[("member", card), ("member", card)])
        assert r.status_code == 200 and r.json()["items"] == []
    # Pushing about a member outside its area, or forging sender or recipient
    assert_problem(await other.post(NOTICES, json=violation(card)), 404, "member_not_found")
    assert_problem(
        await other.post(NOTICES, json={**violation(card), "sender_org": "ba-dinh"}), 422, "validation_error"
    )
    assert_problem(await other.post(NOTICES, json={**violation(card), "recipient_org": "ba-dinh"}), 404)


async def test_the_two_parties_each_see_the_exchange(party, exchange):
    khoi = await party("khoi_clerk")
    ba_dinh = await party("ba_dinh_system")
    for viewer in (khoi, ba_dinh):
        for notice_id in (exchange["down"], exchange["up"]):
            assert (await viewer.get(f"{NOTICES}/{notice_id}")).status_code == 200
    ba_in, _ = await pull_all(ba_dinh)
    ba_out, _ = await pull_all(ba_dinh, box="outbox")
    assert [n["id"] for n in ba_in] == [exchange["down"]] and [n["id"] for n in ba_out] == [exchange["up"]]


async def test_a_district_cannot_see_another_districts_exchange_even_with_the_khoi(party):
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "cau-giay")
    theirs = await push(khoi, introduction(card))
    ba_dinh = await party("ba_dinh_system")
    assert_problem(await ba_dinh.get(f"{NOTICES}/{theirs['id']}"), 404)
    items, _ = await pull_all(ba_dinh)
    assert items == []


async def test_auditors_and_admins_do_not_work_notices(party, exchange):
    for name in ("khoi_auditor", "khoi_admin"):
        caller = await party(name)
        assert_problem(await caller.get(f"{NOTICES}/inbox"), 403, "role_required")
        assert_problem(await caller.get(f"{NOTICES}/{exchange['down']}"), 403, "role_required")
        assert_problem(await caller.get("/api/v1/members"), 403, "role_required")
