"""The exchange's rules as tables, through the HTTP API as the Khối's and a district's systems call it: who may
start which kind of notice, who answers it, and which kinds of reply each kind accepts (and which of them answer
it). The tables are the regulation's rules written down here, not read from the application."""

from datetime import date, timedelta

import pytest

from app.main import app
from tests.exchange import (
    accepted,
    add_member,
    discipline,
    feedback_given,
    feedback_request,
    info_request,
    introduction,
    push,
    violation,
)
from tests.helpers import assert_problem

NOTICES = "/api/v1/notices"
KHOI, DISTRICT = "khoi_system", "ba_dinh_system"


def _move(card: str) -> dict:
    return {
        "kind": "member.residence_changed",
        "member_card_no": card,
        "payload": {"from_org": "ba-dinh", "to_org": "dong-da", "moved_on": date.today().isoformat()},
    }


def _not_accepted(card: str = "") -> dict:
    return {"kind": "member.not_accepted", "payload": {"reason": "Không cư trú tại địa chỉ đã giới thiệu"}}


def _info_provided(card: str = "") -> dict:
    return {"kind": "info.provided", "payload": {"answer": "Đảng viên đã chuyển đến Tổ dân phố số 9."}}


def _reminder(card: str) -> dict:
    due = (date.today() - timedelta(days=3)).isoformat()
    payload = {"year": 2026, "due_date": due, "request_id": "00000000-0000-0000-0000-000000000001", "overdue_days": 3}
    return {"kind": "feedback.reminder", "member_card_no": card, "payload": payload}


def _transfer(card: str) -> dict:
    original = {"id": "00000000-0000-0000-0000-000000000001", "kind": "member.introduced", "sender_org": "khoi-cqtp"}
    payload = {"edition": "e1", "effective": "2025-07-01", "from_org": "ba-dinh", "to_org": "cau-giay"}
    return {"kind": "notice.transferred", "member_card_no": card, "payload": {**payload, "original": original}}


# Bodies of every kind, for a member (`card`); replies carry no member (the thread's member is theirs).
BODIES = {
    "member.introduced": introduction,
    "member.accepted": lambda card: {**accepted(), "member_card_no": card},
    "member.not_accepted": lambda card: {**_not_accepted(), "member_card_no": card},
    "member.residence_changed": _move,
    "feedback.requested": feedback_request,
    "feedback.given": lambda card: {**feedback_given(), "member_card_no": card},
    "feedback.reminder": _reminder,
    "notice.transferred": _transfer,
    "violation.reported": violation,
    "discipline.decided": discipline,
    "info.requested": info_request,
    "info.provided": lambda card: {**_info_provided(), "member_card_no": card},
}

CREATED = (201, None)
KHOI_STARTS_IT = (403, "direction_not_allowed")
ONLY_AS_A_REPLY = (422, "validation_error")  # the push schema has no such kind: it is sent with .../replies
SERVICE_SENDS_IT = (422, "validation_error")

# Who may start which kind with POST /notices: (the Khối, a district).
WHO_STARTS = {
    "member.introduced": (CREATED, KHOI_STARTS_IT),
    "feedback.requested": (CREATED, KHOI_STARTS_IT),
    "member.residence_changed": (CREATED, CREATED),
    "violation.reported": (CREATED, CREATED),
    "discipline.decided": (CREATED, CREATED),
    "info.requested": (CREATED, CREATED),
    "member.accepted": (ONLY_AS_A_REPLY, ONLY_AS_A_REPLY),
    "member.not_accepted": (ONLY_AS_A_REPLY, ONLY_AS_A_REPLY),
    "feedback.given": (ONLY_AS_A_REPLY, ONLY_AS_A_REPLY),
    "info.provided": (ONLY_AS_A_REPLY, ONLY_AS_A_REPLY),
    "feedback.reminder": (SERVICE_SENDS_IT, SERVICE_SENDS_IT),
    "notice.transferred": (SERVICE_SENDS_IT, SERVICE_SENDS_IT),  # a registry edition sends it
}


def test_the_start_table_covers_every_kind_the_api_documents():
    schema = app.openapi()["components"]["schemas"]
    documented = {value for name, s in schema.items() if name == "NoticeKind" for value in s["enum"]} - {
        "notice.corrected"
    }  # a correction names what it corrects: its own tests (test_exchange.py)
    assert documented == set(WHO_STARTS) == set(BODIES)


@pytest.mark.parametrize("kind", sorted(WHO_STARTS))
@pytest.mark.parametrize("starter", [KHOI, DISTRICT])
async def test_who_may_start_which_kind(party, kind, starter):
    khoi_clerk = await party("khoi_clerk")
    card = await add_member(khoi_clerk, "ba-dinh", residence_status="accepted", residence_cell="Chi bộ số 7")
    caller = await party(starter)
    status, code = WHO_STARTS[kind][0 if starter == KHOI else 1]
    r = await caller.post(NOTICES, json=BODIES[kind](card))
    if status == 201:
        assert r.status_code == 201, r.text
        notice = r.json()
        other = "ba-dinh" if starter == KHOI else "khoi-cqtp"
        assert notice["kind"] == kind and notice["recipient_org"] == other and notice["member_card_no"] == card
        receiver = await party(DISTRICT if starter == KHOI else KHOI)
        assert (await receiver.get(f"{NOTICES}/{notice['id']}")).status_code == 200
    else:
        assert_problem(r, status, code)
        assert (await caller.get(f"{NOTICES}/outbox")).json()["items"] == [], "a refused push stores nothing"


# The threads a reply can join: (who started it, how). The recipient is the other side.
PARENTS = {
    "khoi:member.introduced": (KHOI, "member.introduced"),
    "khoi:feedback.requested": (KHOI, "feedback.requested"),
    "khoi:violation.reported": (KHOI, "violation.reported"),
    "khoi:discipline.decided": (KHOI, "discipline.decided"),
    "khoi:info.requested": (KHOI, "info.requested"),
    "district:member.residence_changed": (DISTRICT, "member.residence_changed"),
    "district:violation.reported": (DISTRICT, "violation.reported"),
    "district:discipline.decided": (DISTRICT, "discipline.decided"),
    "district:info.requested": (DISTRICT, "info.requested"),
    "district:member.accepted": (DISTRICT, "member.accepted"),  # a district's answer to an introduction
}
REPLY_BODIES = {
    "member.accepted": accepted,
    "member.not_accepted": _not_accepted,
    "feedback.given": feedback_given,
    "info.requested": lambda: {k: v for k, v in info_request("").items() if k != "member_card_no"},
    "info.provided": _info_provided,
    "violation.reported": lambda: {k: v for k, v in violation("").items() if k != "member_card_no"},
}
# Which kinds may reply to which (the rest: 422 reply_kind_mismatch), and which of them answer the notice.
MAY_REPLY = {
    "member.introduced": {"member.accepted", "member.not_accepted", "info.requested"},
    "member.residence_changed": {"member.accepted", "member.not_accepted", "info.requested"},
    "feedback.requested": {"feedback.given", "info.requested"},
    "info.requested": {"info.provided"},
    "violation.reported": {"info.provided", "info.requested"},
    "discipline.decided": {"info.requested"},
    "member.accepted": {"info.requested"},
}
ANSWERS = {
    "member.introduced": {"member.accepted", "member.not_accepted"},
    "member.residence_changed": {"member.accepted", "member.not_accepted"},
    "feedback.requested": {"feedback.given"},
    "info.requested": {"info.provided"},
}
DISTRICT_ONLY_REPLIES = {"member.accepted", "member.not_accepted", "feedback.given"}


def _expected(starter: str, parent_kind: str, reply_kind: str) -> tuple[int, str | None]:
    if reply_kind not in REPLY_BODIES or reply_kind == "violation.reported":
        return 422, "validation_error"  # not a reply kind at all
    if reply_kind not in MAY_REPLY[parent_kind]:
        return 422, "reply_kind_mismatch"
    if reply_kind in DISTRICT_ONLY_REPLIES and starter == DISTRICT:  # the Khối answers: it cannot accept a member
        return 403, "direction_not_allowed"
    return 201, None


async def _parent(party, starter: str, kind: str) -> tuple[dict, str]:
    khoi_clerk = await party("khoi_clerk")
    card = await add_member(khoi_clerk, "ba-dinh", residence_status="accepted", residence_cell="Chi bộ số 7")
    if kind == "member.accepted":  # the district's acceptance, in the thread of the Khối's introduction
        intro = await push(await party(KHOI), introduction(card))
        r = await (await party(DISTRICT)).post(f"{NOTICES}/{intro['id']}/replies", json=accepted())
        assert r.status_code == 201, r.text
        return r.json(), card
    return await push(await party(starter), BODIES[kind](card)), card


@pytest.mark.parametrize("reply_kind", sorted(REPLY_BODIES))
@pytest.mark.parametrize("parent", sorted(PARENTS))
async def test_who_answers_what_and_with_which_kind(party, parent, reply_kind):
    starter, parent_kind = PARENTS[parent]
    notice, _ = await _parent(party, starter, parent_kind)
    recipient = await party(DISTRICT if starter == KHOI else KHOI)
    r = await recipient.post(f"{NOTICES}/{notice['id']}/replies", json=REPLY_BODIES[reply_kind]())
    status, code = _expected(starter, parent_kind, reply_kind)
    after = (await recipient.get(f"{NOTICES}/{notice['id']}")).json()
    if status != 201:
        assert_problem(r, status, code)
        assert [n["id"] for n in after["thread"] if n["in_reply_to"] == notice["id"]] == [], "nothing stored"
        return
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["kind"] == reply_kind and answer["in_reply_to"] == notice["id"]
    assert answer["thread_id"] == notice["thread_id"] and answer["recipient_org"] == notice["sender_org"]
    answered = reply_kind in ANSWERS.get(parent_kind, set())
    assert (after["status"] == "answered") == answered, after["status"]


@pytest.mark.parametrize("parent", sorted(PARENTS))
async def test_only_the_recipient_replies_and_nobody_else_sees_the_thread(party, parent):
    starter, parent_kind = PARENTS[parent]
    notice, _ = await _parent(party, starter, parent_kind)
    question = REPLY_BODIES["info.requested"]()
    sender = await party(starter)
    assert_problem(await sender.post(f"{NOTICES}/{notice['id']}/replies", json=question), 403, "not_recipient")
    outsider = await party("cau_giay_system")
    assert_problem(await outsider.post(f"{NOTICES}/{notice['id']}/replies", json=question), 404, "notice_not_found")
