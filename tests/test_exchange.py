"""The two-way exchange as district systems and Khối staff run it, through HTTP alone."""

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import text, update

from app.infra.clock import today
from app.infra.db import db
from app.models.notice import Notice
from app.schemas.notice import NoticeCreated, NoticeDetail, NoticePublic, NoticesPublic
from tests import files
from tests.exchange import (
    accepted,
    add_member,
    discipline,
    feedback_given,
    feedback_request,
    info_request,
    introduction,
    iso,
    member_body,
    pull_all,
    push,
    violation,
)
from tests.helpers import assert_problem

NOTICES = "/api/v1/notices"


async def test_a_whole_year_of_the_residence_lifecycle(party):
    khoi = await party("khoi_clerk")
    ba_dinh = await party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh")

    # 1. The Khối introduces the member to Ba Đình.
    intro = await push(khoi, introduction(card))
    assert intro["sender_org"] == "khoi-cqtp" and intro["recipient_org"] == "ba-dinh" and intro["status"] == "sent"

    # 2. Ba Đình pulls its inbox: the introduction is there, and now delivered.
    items, cursor = await pull_all(ba_dinh)
    assert [n["id"] for n in items] == [intro["id"]]
    assert items[0]["status"] == "delivered" and items[0]["delivered_at"]

    # 3. Ba Đình accepts: the member attends a residence cell.
    acc = await ba_dinh.post(f"{NOTICES}/{intro['id']}/replies", json=accepted())
    assert acc.status_code == 201, acc.text
    assert acc.json()["thread_id"] == intro["id"] and acc.json()["in_reply_to"] == intro["id"]
    member = (await khoi.get(f"/api/v1/members/{card}")).json()
    assert member["residence_status"] == "accepted" and member["residence_cell"] == "Chi bộ Tổ dân phố số 7"
    thread = (await khoi.get(f"{NOTICES}/{intro['id']}")).json()
    assert thread["status"] == "answered" and [n["kind"] for n in thread["thread"]] == [
        "member.introduced",
        "member.accepted",
    ]

    # 4. Year end: the Khối asks for comments, Ba Đình answers by the deadline.
    request = await push(khoi, feedback_request(card))
    assert request["due_date"] and request["overdue"] is False
    items, cursor = await pull_all(ba_dinh, cursor=cursor)
    assert [n["id"] for n in items] == [request["id"]]
    given = await ba_dinh.post(f"{NOTICES}/{request['id']}/replies", json=feedback_given())
    assert given.status_code == 201, given.text
    assert (await khoi.get(f"{NOTICES}/{request['id']}")).json()["status"] == "answered"

    # 5. The Khối pulls the answers and acknowledges them.
    khoi_items, _ = await pull_all(khoi)
    assert [n["kind"] for n in khoi_items] == ["member.accepted", "feedback.given"]
    ack = await khoi.post(f"{NOTICES}/{given.json()['id']}/ack")
    assert ack.status_code == 200 and ack.json()["status"] == "acknowledged" and ack.json()["acknowledged_at"]
    again = await khoi.post(f"{NOTICES}/{given.json()['id']}/ack")
    assert again.json()["acknowledged_at"] == ack.json()["acknowledged_at"]

    # Nothing new for Ba Đình since its last pull; the cursor still resumes.
    items, same_cursor = await pull_all(ba_dinh, cursor=cursor)
    assert items == [] and same_cursor == cursor


async def test_violation_reports_and_discipline_notices_travel_in_both_directions(party):
    khoi = await party("khoi_clerk")
    ba_dinh = await party("ba_dinh_clerk")
    card = await add_member(khoi, "ba-dinh")
    up = await push(ba_dinh, violation(card))
    assert up["sender_org"] == "ba-dinh" and up["recipient_org"] == "khoi-cqtp"
    down = await push(khoi, violation(card))
    assert down["sender_org"] == "khoi-cqtp" and down["recipient_org"] == "ba-dinh"
    d1 = await push(khoi, discipline(card, "warning"))
    d2 = await push(ba_dinh, discipline(card, "reprimand"))
    assert (d1["recipient_org"], d2["recipient_org"]) == ("ba-dinh", "khoi-cqtp")
    khoi_in, _ = await pull_all(khoi)
    district_in, _ = await pull_all(ba_dinh)
    assert [n["id"] for n in khoi_in] == [up["id"], d2["id"]]
    assert [n["id"] for n in district_in] == [down["id"], d1["id"]]
    # The recipient asks for details; the sender answers.
    q = await ba_dinh.post(f"{NOTICES}/{d1['id']}/replies", json=info_request(card) | {"member_card_no": None})
    assert_problem(q, 422, "validation_error")
    q = await ba_dinh.post(
        f"{NOTICES}/{d1['id']}/replies",
        json={"kind": "info.requested", "payload": {"question": "Đề nghị gửi bản sao quyết định."}},
    )
    assert q.status_code == 201
    a = await khoi.post(
        f"{NOTICES}/{q.json()['id']}/replies",
        json={"kind": "info.provided", "payload": {"answer": "Đã gửi kèm theo văn bản."}},
    )
    assert a.status_code == 201
    assert (await khoi.get(f"{NOTICES}/{q.json()['id']}")).json()["status"] == "answered"
    # Filters narrow the inbox.
    only, _ = await pull_all(khoi, kind="discipline.decided")
    assert [n["id"] for n in only] == [d2["id"]]
    by_member, _ = await pull_all(khoi, member=card)
    assert len(by_member) == 3


async def test_exchange_rules_are_enforced(party):
    khoi = await party("khoi_clerk")
    ba_dinh = await party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh")
    intro = await push(khoi, introduction(card))
    # Districts do not introduce; answers go through replies; the recipient is derived, not chosen.
    assert_problem(await ba_dinh.post(NOTICES, json=introduction(card)), 403, "direction_not_allowed")
    assert_problem(await ba_dinh.post(NOTICES, json={"member_card_no": card, **accepted()}), 422, "validation_error")
    assert_problem(
        await khoi.post(NOTICES, json={**violation(card), "recipient_org": "cau-giay"}), 422, "recipient_mismatch"
    )
    assert_problem(await khoi.post(NOTICES, json={**violation(card), "sender_org": "ba-dinh"}), 422, "validation_error")
    assert_problem(
        await khoi.post(NOTICES, json={**violation(card), "kind": "member.teleported"}), 422, "validation_error"
    )
    # Only the recipient replies or acknowledges, with a kind that answers this notice.
    assert_problem(await khoi.post(f"{NOTICES}/{intro['id']}/replies", json=accepted()), 403, "not_recipient")
    assert_problem(await khoi.post(f"{NOTICES}/{intro['id']}/ack"), 403, "not_recipient")
    assert_problem(
        await ba_dinh.post(f"{NOTICES}/{intro['id']}/replies", json=feedback_given()), 422, "reply_kind_mismatch"
    )
    assert (await ba_dinh.post(f"{NOTICES}/{intro['id']}/replies", json=accepted())).status_code == 201
    assert_problem(await ba_dinh.post(f"{NOTICES}/{intro['id']}/replies", json=accepted()), 409, "already_answered")
    request = await push(khoi, feedback_request(card, year=2026))
    assert_problem(
        await ba_dinh.post(f"{NOTICES}/{request['id']}/replies", json=feedback_given(year=2025)), 422, "year_mismatch"
    )
    # Dates in the wrong order or on the wrong side of today.
    past_due = feedback_request(card)
    past_due["payload"]["due_date"] = iso(today() - timedelta(days=1))
    assert_problem(await khoi.post(NOTICES, json=past_due), 422, "due_date_in_past")
    future = violation(card)
    future["payload"]["observed_on"] = iso(today() + timedelta(days=3))
    assert_problem(await khoi.post(NOTICES, json=future), 422, "date_in_future")
    backwards = discipline(card)
    backwards["payload"]["effective_from"] = iso(today() - timedelta(days=10))
    assert_problem(await khoi.post(NOTICES, json=backwards), 422, "validation_error")
    bad_card = {**violation(card), "member_card_no": "12ab"}
    assert_problem(await khoi.post(NOTICES, json=bad_card), 422, "validation_error")
    assert_problem(
        await khoi.post(NOTICES, json={**violation(card), "member_card_no": "99999999"}), 404, "member_not_found"
    )
    long_text = violation(card)
    long_text["payload"]["summary"] = "x" * 501
    assert_problem(await khoi.post(NOTICES, json=long_text), 422, "validation_error")
    # A district reports a move away from itself only, to a real district.
    move = {
        "kind": "member.residence_changed",
        "member_card_no": card,
        "payload": {"from_org": "cau-giay", "to_org": "dong-da", "moved_on": iso(today())},
    }
    assert_problem(await ba_dinh.post(NOTICES, json=move), 422, "residence_mismatch")
    move["payload"]["from_org"] = "ba-dinh"
    move["payload"]["to_org"] = "khoi-cqtp"
    assert_problem(await ba_dinh.post(NOTICES, json=move), 422, "not_a_district")
    move["payload"]["to_org"] = "dong-da"
    assert (await ba_dinh.post(NOTICES, json=move)).status_code == 201
    # Nothing refused above was written: the Khối's outbox holds only what was accepted.
    out, _ = await pull_all(khoi, box="outbox")
    assert [n["kind"] for n in out] == ["member.introduced", "feedback.requested"]


async def test_corrections_supersede_without_overwriting(party):
    khoi = await party("khoi_clerk")
    ba_dinh = await party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh")
    intro = await push(khoi, introduction(card))
    fixed = dict(introduction(card)["payload"], letter_no="126-GGT/ĐUK")
    body = {
        "kind": "notice.corrected",
        "member_card_no": card,
        "supersedes": intro["id"],
        "payload": {"reason": "Sai số giấy giới thiệu", "corrected": fixed},
    }
    correction = await push(khoi, body)
    assert correction["supersedes"] == intro["id"] and correction["thread_id"] == intro["id"]
    assert correction["recipient_org"] == "ba-dinh"
    assert correction["payload"]["corrected"]["letter_no"] == "126-GGT/ĐUK"
    # The original stays as it was.
    original = (await ba_dinh.get(f"{NOTICES}/{intro['id']}")).json()
    assert original["payload"]["letter_no"] == "125-GGT/ĐUK"
    assert [n["kind"] for n in original["thread"]] == ["member.introduced", "notice.corrected"]
    # Only the latest version can be corrected, only by its sender, only with the original's structure.
    assert_problem(await khoi.post(NOTICES, json=body), 409, "already_superseded")
    again = {**body, "supersedes": correction["id"]}
    assert (await khoi.post(NOTICES, json=again)).status_code == 201
    up = await push(ba_dinh, violation(card))
    not_ours = {**body, "supersedes": up["id"]}
    assert_problem(await khoi.post(NOTICES, json=not_ours), 403, "not_sender")
    broken = {**body, "supersedes": up["id"], "payload": {"reason": "x", "corrected": {"summary": ""}}}
    assert_problem(await ba_dinh.post(NOTICES, json=broken), 422, "invalid_correction")
    unknown = {**body, "supersedes": str(uuid.uuid4())}
    assert_problem(await khoi.post(NOTICES, json=unknown), 404, "notice_not_found")


async def test_overdue_requests_are_listed_as_overdue(party):
    khoi = await party("khoi_clerk")
    ba_dinh = await party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh")
    late = await push(khoi, feedback_request(card))
    on_time = await push(khoi, feedback_request(card, year=2027))
    async with db.sessions() as s:  # the deadline passes
        await s.execute(
            update(Notice).where(Notice.id == uuid.UUID(late["id"])).values(due_date=today() - timedelta(days=2))
        )
        await s.commit()
    overdue, _ = await pull_all(ba_dinh, overdue="true")
    assert [n["id"] for n in overdue] == [late["id"]] and overdue[0]["overdue"] is True
    not_overdue, _ = await pull_all(ba_dinh, overdue="false")
    assert [n["id"] for n in not_overdue] == [on_time["id"]]
    # Answering it late clears the flag.
    await ba_dinh.post(f"{NOTICES}/{late['id']}/replies", json=feedback_given())
    assert (await khoi.get(f"{NOTICES}/{late['id']}")).json()["overdue"] is False


async def test_the_inbox_cursor_neither_misses_nor_repeats_while_others_push(party):
    khoi = await party("khoi_clerk")
    ba_dinh = await party("ba_dinh_system")
    cards = [await add_member(khoi, "ba-dinh") for _ in range(4)]
    pushed: list[str] = []
    seen: list[str] = []
    done = asyncio.Event()

    async def pusher(i: int) -> None:
        for j in range(8):
            pushed.append((await push(khoi, violation(cards[(i + j) % len(cards)])))["id"])

    async def puller() -> None:
        cursor = None
        while True:
            finished = done.is_set()
            r = await ba_dinh.get(f"{NOTICES}/inbox", params={"limit": 3, **({"cursor": cursor} if cursor else {})})
            assert r.status_code == 200
            seen.extend(n["id"] for n in r.json()["items"])
            cursor = r.json()["next_cursor"]
            if finished and not r.json()["has_more"]:
                return
            await asyncio.sleep(0)

    pull_task = asyncio.create_task(puller())
    await asyncio.gather(*(pusher(i) for i in range(4)))
    done.set()
    await pull_task
    assert len(seen) == len(set(seen)), "a notice was delivered twice"
    assert set(seen) == set(pushed) and len(pushed) == 32


async def test_idempotency_key_replays_the_first_response_and_refuses_another_body(party):
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    key = {"Idempotency-Key": "push-" + uuid.uuid4().hex}
    first = await khoi.post(NOTICES, json=violation(card), headers=key)
    assert first.status_code == 201 and first.headers["location"] == f"/api/v1/notices/{first.json()['id']}"
    retry = await khoi.post(NOTICES, json=violation(card), headers=key)
    assert retry.status_code == 201 and retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true" and retry.headers["location"] == first.headers["location"]
    assert_problem(await khoi.post(NOTICES, json=discipline(card), headers=key), 422, "idempotency_key_reused")
    # Keys belong to the calling account: the same key from another account is a new request.
    other = await party("khoi_officer")
    second = await other.post(NOTICES, json=violation(card), headers=key)
    assert second.status_code == 201 and second.json()["id"] != first.json()["id"]
    assert_problem(
        await khoi.post(NOTICES, json=violation(card), headers={"Idempotency-Key": "bad key"}),
        400,
        "invalid_idempotency_key",
    )
    out, _ = await pull_all(khoi, box="outbox")
    assert [n["id"] for n in out] == [first.json()["id"], second.json()["id"]]


async def test_concurrent_duplicates_with_one_key_create_exactly_one_notice(party):
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    key = {"Idempotency-Key": "dup-" + uuid.uuid4().hex}
    responses = await asyncio.gather(*(khoi.post(NOTICES, json=violation(card), headers=key) for _ in range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    created = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    for r in responses:
        if r.status_code == 409:
            assert_problem(r, 409, "idempotency_in_progress")
    out, _ = await pull_all(khoi, box="outbox")
    assert [n["id"] for n in out] == list(created)


async def test_a_reply_is_idempotent_too(party):
    khoi = await party("khoi_clerk")
    ba_dinh = await party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh")
    request = await push(khoi, feedback_request(card))
    key = {"Idempotency-Key": "reply-" + uuid.uuid4().hex}
    first = await ba_dinh.post(f"{NOTICES}/{request['id']}/replies", json=feedback_given(), headers=key)
    retry = await ba_dinh.post(f"{NOTICES}/{request['id']}/replies", json=feedback_given(), headers=key)
    assert first.status_code == retry.status_code == 201 and first.json() == retry.json()


async def test_committed_notices_get_gapless_positions_and_pulls_return_them_in_that_order(party):
    """Positions are given after commit, one sequencer at a time: 1, 2, 3 … with no gap, and the notices of one
    transaction (a move sends two) stay together."""
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    moved = await khoi.put(f"/api/v1/members/{card}", json=member_body("cau-giay"))
    assert moved.status_code == 200
    await push(khoi, violation(card))
    outbox = (await khoi.get("/api/v1/notices/outbox")).json()["items"]
    async with db.sessions() as s:
        rows = (await s.execute(text("SELECT id, kind, position FROM notices ORDER BY position"))).all()
    assert [r.position for r in rows] == list(range(1, len(rows) + 1))
    assert [str(r.id).replace("-", "") for r in rows] == [n["id"].replace("-", "") for n in outbox]
    assert [r.kind for r in rows][:2] == ["member.residence_changed"] * 2


async def test_a_cursor_handed_out_before_positions_existed_keeps_working(party):
    """Before positions, a cursor was [tx, seq] of the last notice returned; the migration numbered notices in that
    order, so the notice's position continues it. One naming no notice gets a clear 400: pull from the start."""
    from app.http.pagination import encode_cursor

    khoi = await party("khoi_clerk")
    ba_dinh = await party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh")
    ids = [(await push(khoi, violation(card)))["id"] for _ in range(3)]
    async with db.sessions() as s:
        first_seq = (await s.execute(select_seq_of(ids[0]))).scalar()
    legacy = encode_cursor(123456, first_seq)
    r = await ba_dinh.get("/api/v1/notices/inbox", params={"cursor": legacy})
    assert r.status_code == 200, r.text
    assert [n["id"] for n in r.json()["items"]] == ids[1:]
    gone = await ba_dinh.get("/api/v1/notices/inbox", params={"cursor": encode_cursor(123456, 10**12)})
    assert_problem(gone, 400, "cursor_outdated")
    for crafted in (encode_cursor(10**30), encode_cursor(-1), encode_cursor(1e308)):
        assert_problem(await ba_dinh.get("/api/v1/notices/inbox", params={"cursor": crafted}), 400, "invalid_cursor")


def select_seq_of(notice_id: str):
    from sqlalchemy import select

    return select(Notice.seq).where(Notice.id == uuid.UUID(notice_id))


async def test_an_empty_cursor_means_from_the_start(party):
    """A script whose cursor variable is still unset sends `cursor=`: the first page, not a 400."""
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    sent = await push(khoi, violation(card))
    ba_dinh = await party("ba_dinh_system")
    inbox = await ba_dinh.get(f"{NOTICES}/inbox?limit=50&cursor=")
    assert inbox.status_code == 200, inbox.text
    assert [n["id"] for n in inbox.json()["items"]] == [sent["id"]] and inbox.json()["next_cursor"]
    outbox = await khoi.get(f"{NOTICES}/outbox?cursor=")
    assert outbox.status_code == 200 and [n["id"] for n in outbox.json()["items"]] == [sent["id"]]
    empty = await ba_dinh.get(f"{NOTICES}/outbox?cursor=")
    assert empty.status_code == 200 and empty.json()["next_cursor"] is None
    auditor = await party("khoi_auditor")
    entries = await auditor.get("/api/v1/audit/entries?cursor=")
    assert entries.status_code == 200 and entries.json()["items"], entries.text


async def test_every_notice_response_is_exactly_what_its_schema_writes(party):
    """Notices are shown without validating them again (a pull builds fifty): each response of push, reply, pull,
    read and acknowledge must still be exactly what its schema makes of it, with documents, due dates, enums and
    timestamps included."""
    officer, ba_dinh = await party("khoi_officer"), await party("ba_dinh_system")
    card = await add_member(officer, "ba-dinh")
    doc = await officer.post("/api/v1/documents", files={"file": ("bien-ban.pdf", files.pdf("Biên bản"), "x/y")})
    assert doc.status_code == 201, doc.text
    pushed = await officer.post(NOTICES, json={**feedback_request(card), "document_ids": [doc.json()["id"]]})
    assert pushed.status_code == 201, pushed.text
    inbox = await ba_dinh.get(f"{NOTICES}/inbox")
    replied = await ba_dinh.post(f"{NOTICES}/{pushed.json()['id']}/replies", json=feedback_given())
    read = await officer.get(f"{NOTICES}/{pushed.json()['id']}")
    acked = await officer.post(f"{NOTICES}/{replied.json()['id']}/ack")
    for response, schema in [
        (pushed, NoticeCreated),
        (inbox, NoticesPublic),
        (replied, NoticeCreated),
        (read, NoticeDetail),
        (acked, NoticePublic),
    ]:
        assert response.status_code in (200, 201), response.text
        body = response.json()
        assert schema.model_validate(body).model_dump(mode="json") == body, schema.__name__
    assert inbox.json()["items"][0]["documents"][0]["sha256"] == doc.json()["sha256"]
    assert inbox.json()["items"][0]["due_date"] and inbox.json()["items"][0]["kind"] == "feedback.requested"
    assert read.json()["status"] == "answered" and [n["kind"] for n in read.json()["thread"]] == [
        "feedback.requested",
        "feedback.given",
    ]
    assert acked.json()["status"] == "acknowledged" and acked.json()["acknowledged_at"]
