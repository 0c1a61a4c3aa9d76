"""Members: the Khối keeps the records, each district reads the members living in its area."""

import unicodedata

from sqlalchemy import select

from app.infra.db import db
from app.models.member import Member
from tests.exchange import add_member, member_body, new_card, pull_all
from tests.helpers import assert_problem

MEMBERS = "/api/v1/members"


async def test_khoi_creates_a_member_and_the_same_put_again_changes_nothing(party):
    khoi = await party("khoi_clerk")
    card = new_card()
    r = await khoi.put(f"{MEMBERS}/{card}", json=member_body())
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1 and r.json()["full_name"] == "Nguyễn Văn An"
    r = await khoi.put(f"{MEMBERS}/{card}", json=member_body())
    assert r.status_code == 200 and r.json()["version"] == 1
    r = await khoi.put(f"{MEMBERS}/{card}", json=member_body(residence_address="Số 14 ngõ 5 Kim Mã"))
    assert r.status_code == 200 and r.json()["version"] == 2
    assert r.json()["residence_address"] == "Số 14 ngõ 5 Kim Mã"


async def test_a_district_reads_only_members_living_in_its_area_and_cannot_write(party):
    khoi = await party("khoi_clerk")
    ours = await add_member(khoi, "ba-dinh", full_name="Trần Thị Bình")
    theirs = await add_member(khoi, "cau-giay", full_name="Lê Văn Cường")
    ba_dinh = await party("ba_dinh_system")
    assert (await ba_dinh.get(f"{MEMBERS}/{ours}")).json()["full_name"] == "Trần Thị Bình"
    assert_problem(await ba_dinh.get(f"{MEMBERS}/{theirs}"), 404, "member_not_found")
    listed = (await ba_dinh.get(MEMBERS)).json()["items"]
    assert [m["party_card_no"] for m in listed] == [ours]
    # Filters cannot widen the view, however they are repeated.
    r = await ba_dinh.get(MEMBERS, params=[("residence_org", "cau-giay")])
    assert r.json()["items"] == []
    r = await ba_dinh.get(MEMBERS, params=[("residence_org", "ba-dinh"), ("residence_org", "cau-giay")])
    assert r.json()["items"] == []
    r = await ba_dinh.get(MEMBERS, params={"card_no": theirs})
    assert r.json()["items"] == []
    assert_problem(await ba_dinh.put(f"{MEMBERS}/{ours}", json=member_body()), 403, "khoi_only")
    # The Khối reads all of its members.
    khoi_list = (await khoi.get(MEMBERS)).json()["items"]
    assert {m["party_card_no"] for m in khoi_list} == {ours, theirs}


async def test_names_are_found_with_or_without_diacritics_and_nfd_input_is_the_same_person(party):
    khoi = await party("khoi_clerk")
    an = await add_member(khoi, full_name="Nguyễn Văn An")
    dat = await add_member(khoi, full_name="Đỗ Quang Đạt", residence_ward="Phường Điện Biên")
    await add_member(khoi, full_name="Phạm Thị Hương")
    for query, expected in [
        ("nguyen van an", [an]),
        ("Nguyễn Văn An", [an]),
        ("NGUYEN", [an]),
        ("do quang dat", [dat]),
        ("đạt", [dat]),
        ("van", [an]),
    ]:
        r = await khoi.get(MEMBERS, params={"q": query})
        assert [m["party_card_no"] for m in r.json()["items"]] == expected, query
    r = await khoi.get(MEMBERS, params={"ward": "dien bien"})
    assert [m["party_card_no"] for m in r.json()["items"]] == [dat]
    # NFD input is stored NFC and updates the same record without a change.
    nfd = unicodedata.normalize("NFD", "Nguyễn Văn An")
    assert nfd != "Nguyễn Văn An"
    r = await khoi.put(f"{MEMBERS}/{an}", json=member_body(full_name=nfd))
    assert r.status_code == 200 and r.json()["version"] == 1
    assert r.json()["full_name"] == unicodedata.normalize("NFC", nfd)
    r = await khoi.get(MEMBERS, params={"q": unicodedata.normalize("NFD", "nguyễn")})
    assert [m["party_card_no"] for m in r.json()["items"]] == [an]


async def test_search_is_cursor_paginated_in_card_order(party):
    khoi = await party("khoi_clerk")
    cards = sorted([await add_member(khoi) for _ in range(5)])
    seen, cursor = [], None
    while True:
        r = await khoi.get(MEMBERS, params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        seen += [m["party_card_no"] for m in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert seen == cards


async def test_moving_a_member_notifies_the_old_and_the_new_district_in_the_same_change(party):
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    r = await khoi.put(
        f"{MEMBERS}/{card}",
        json=member_body("cau-giay", residence_ward="Phường Dịch Vọng", residence_since="2026-10-01"),
    )
    assert r.status_code == 200 and r.json()["residence_org"] == "cau-giay"
    for name in ("ba_dinh_system", "cau_giay_system"):
        district = await party(name)
        items, _ = await pull_all(district)
        moves = [n for n in items if n["kind"] == "member.residence_changed"]
        assert len(moves) == 1 and moves[0]["member_card_no"] == card
        assert moves[0]["payload"]["from_org"] == "ba-dinh" and moves[0]["payload"]["to_org"] == "cau-giay"
        assert moves[0]["sender_org"] == "khoi-cqtp"
    # The member now belongs to Cầu Giấy's view, no longer to Ba Đình's.
    assert (await (await party("cau_giay_system")).get(f"{MEMBERS}/{card}")).status_code == 200
    assert_problem(await (await party("ba_dinh_system")).get(f"{MEMBERS}/{card}"), 404)


async def test_bad_member_input_is_refused_with_a_clear_problem_and_nothing_is_written(party):
    khoi = await party("khoi_clerk")
    card = new_card()
    cases = [
        (member_body(citizen_id="12345"), "validation_error"),
        (member_body(full_name="Nguyễn\u200bVăn An"), "validation_error"),
        (member_body(full_name="Nguyễn\x00Văn"), "validation_error"),
        (member_body(full_name="   "), "validation_error"),
        (member_body(full_name="A" * 201), "validation_error"),
        (member_body(residence_status="exempt"), "validation_error"),
        (member_body(residence_status="accepted"), "validation_error"),
        (member_body(residence_since="1970-01-01"), "validation_error"),
        (member_body(birth_date="2999-01-01"), "validation_error"),
        (member_body(exemption_category="barracks"), "validation_error"),
        ({**member_body(), "sender_org": "khoi-cqtp"}, "validation_error"),
        (member_body("khoi-cqtp"), "not_a_district"),
    ]
    for body, code in cases:
        r = await khoi.put(f"{MEMBERS}/{card}", json=body)
        assert_problem(r, 422, code)
        assert "detail" in r.json()
    assert_problem(await khoi.put(f"{MEMBERS}/{card}", json=member_body("atlantis")), 404, "organization_not_found")
    assert_problem(await khoi.put(f"{MEMBERS}/12-34", json=member_body()), 422, "validation_error")
    assert_problem(
        await khoi.put(f"{MEMBERS}/{card}", content=b"{not json", headers={"Content-Type": "application/json"}), 422
    )
    async with db.sessions() as s:
        assert (await s.execute(select(Member))).first() is None


async def test_exempt_members_carry_their_category(party):
    khoi = await party("khoi_clerk")
    card = new_card()
    r = await khoi.put(
        f"{MEMBERS}/{card}", json=member_body(residence_status="exempt", exemption_category="full_time_study")
    )
    assert r.status_code == 201 and r.json()["exemption_category"] == "full_time_study"
