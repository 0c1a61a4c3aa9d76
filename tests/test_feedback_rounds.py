"""The annual residence-comment round and reconciliation between the two sides."""

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text, update

from app.infra.clock import today
from app.infra.db import db
from app.main import app
from app.models.feedback import FeedbackRoundItem
from app.models.notice import Notice
from tests.exchange import add_member, feedback_given, introduction, iso, member_body, pull_all, push, violation
from tests.helpers import assert_problem
from tests.transport import ResponseFirstTransport

ROUNDS = "/api/v1/feedback-rounds"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """Responses arrive before the round's background batches have run, as from a real server."""
    async with httpx.AsyncClient(transport=ResponseFirstTransport(app), base_url="http://testserver") as c:
        yield c


async def _population(khoi) -> dict[str, list[str]]:
    """Members of every residence status in two districts and two units."""
    cards: dict[str, list[str]] = {}

    async def add(key, district, unit, **status):
        card = await add_member(khoi, district, workplace_unit_code=unit, **status)
        cards.setdefault(key, []).append(card)

    accepted = {"residence_status": "accepted", "residence_cell": "Chi bộ Tổ dân phố số 7"}
    for _ in range(3):
        await add("accepted", "ba-dinh", "so-tu-phap", **accepted)
    await add("accepted", "cau-giay", "so-tai-chinh", **accepted)
    await add("accepted", "cau-giay", "so-tu-phap", **accepted)
    await add("exempt", "ba-dinh", "so-tu-phap", residence_status="exempt", exemption_category="barracks")
    await add("introduced", "ba-dinh", "so-tai-chinh")
    await add(
        "not_accepted",
        "cau-giay",
        "so-tu-phap",
        residence_status="not_accepted",
        status_reason="Không cư trú tại địa chỉ",
    )
    await add("moved", "cau-giay", "so-tai-chinh", residence_status="moved_away")
    return cards


async def _finished(caller, round_id: str, timeout: float = 60) -> dict:
    """The round's progress once its background batches are done (bounded wait, polling the progress API)."""
    deadline = time.monotonic() + timeout
    while True:
        r = await caller.get(f"{ROUNDS}/{round_id}")
        assert r.status_code == 200, r.text
        progress = r.json()
        if progress["status"] != "running":
            assert progress["status"] == "completed", progress
            return progress
        assert time.monotonic() < deadline, f"the round did not finish within {timeout} s: {progress}"
        await asyncio.sleep(0.05)


async def _start(khoi, body: dict, status: int = 201) -> dict:
    """Open (or open again) a round and wait until it has done its work; its progress."""
    r = await khoi.post(ROUNDS, json=body)
    assert r.status_code == status, r.text
    return await _finished(khoi, r.json()["id"])


def _by(items, key):
    return {row[key]: {k: row[k] for k in ("requested", "answered", "overdue", "skipped")} for row in items}


async def test_a_round_requests_comments_for_eligible_members_and_lists_the_skipped_with_reasons(party):
    khoi = await party("khoi_clerk")
    cards = await _population(khoi)
    deadline = iso(today() + timedelta(days=20))
    progress = await _start(khoi, {"year": 2026, "deadline": deadline})
    assert progress["processed"] == 9
    assert progress["totals"] == {"requested": 5, "answered": 0, "overdue": 0, "skipped": 4}
    assert _by(progress["by_district"], "district") == {
        "ba-dinh": {"requested": 3, "answered": 0, "overdue": 0, "skipped": 2},
        "cau-giay": {"requested": 2, "answered": 0, "overdue": 0, "skipped": 2},
    }
    assert _by(progress["by_unit"], "unit_code")["so-tai-chinh"] == {
        "requested": 1,
        "answered": 0,
        "overdue": 0,
        "skipped": 2,
    }
    assert {s["reason"]: s["count"] for s in progress["skipped_reasons"]} == {
        "exempt:barracks": 1,
        "not_yet_accepted": 1,
        "not_accepted": 1,
        "moved_away": 1,
    }
    # Each district received one signed request per eligible member living there.
    ba_dinh = await party("ba_dinh_system")
    inbox, _ = await pull_all(ba_dinh, kind="feedback.requested")
    assert sorted(n["member_card_no"] for n in inbox) == sorted(cards["accepted"][:3])
    assert all(n["due_date"] == deadline and n["signature"] and n["payload"]["year"] == 2026 for n in inbox)


async def test_running_the_round_again_creates_only_what_is_missing(party):
    khoi = await party("khoi_clerk")
    await _population(khoi)
    body = {"year": 2026, "deadline": iso(today() + timedelta(days=20))}
    first = await _start(khoi, body)
    again = await _start(khoi, body, status=200)
    assert again["id"] == first["id"] and again["totals"]["requested"] == 5
    await add_member(khoi, "dong-da", residence_status="accepted", residence_cell="Chi bộ 3")
    third = await _start(khoi, body, status=200)
    assert third["id"] == first["id"]
    assert third["totals"]["requested"] == 6 and third["processed"] == 10
    out, _ = await pull_all(khoi, box="outbox", kind="feedback.requested")
    assert len(out) == 6, "no member asked twice"


async def test_a_round_can_be_limited_to_some_units(party):
    khoi = await party("khoi_clerk")
    await _population(khoi)
    progress = await _start(
        khoi, {"year": 2026, "deadline": iso(today() + timedelta(days=20)), "units": ["so-tai-chinh"]}
    )
    assert progress["units"] == ["so-tai-chinh"]
    assert progress["totals"] == {"requested": 1, "answered": 0, "overdue": 0, "skipped": 2}


async def test_progress_counts_answers_and_overdue_and_a_district_sees_only_its_part(party):
    khoi = await party("khoi_clerk")
    await _population(khoi)
    round_id = (await _start(khoi, {"year": 2026, "deadline": iso(today() + timedelta(days=20))}))["id"]
    ba_dinh = await party("ba_dinh_system")
    requests, _ = await pull_all(ba_dinh, kind="feedback.requested")
    r = await ba_dinh.post(f"/api/v1/notices/{requests[0]['id']}/replies", json=feedback_given())
    assert r.status_code == 201
    async with db.sessions() as s:  # Cầu Giấy's deadline passes
        await s.execute(
            text("UPDATE notices SET due_date = :d WHERE recipient_org = 'cau-giay' AND kind = 'feedback.requested'"),
            {"d": today() - timedelta(days=3)},
        )
        await s.commit()
    progress = (await khoi.get(f"{ROUNDS}/{round_id}")).json()
    assert _by(progress["by_district"], "district") == {
        "ba-dinh": {"requested": 3, "answered": 1, "overdue": 0, "skipped": 2},
        "cau-giay": {"requested": 2, "answered": 0, "overdue": 2, "skipped": 2},
    }
    own = (await ba_dinh.get(f"{ROUNDS}/{round_id}")).json()
    assert [d["district"] for d in own["by_district"]] == ["ba-dinh"]
    assert own["totals"] == {"requested": 3, "answered": 1, "overdue": 0, "skipped": 2}


async def test_overdue_requests_get_one_reminder_per_interval_never_a_flood(party):
    khoi = await party("khoi_clerk")
    await _population(khoi)
    round_id = (await _start(khoi, {"year": 2026, "deadline": iso(today() + timedelta(days=20))}))["id"]
    assert (await khoi.post(f"{ROUNDS}/{round_id}/reminders")).json() == {"sent": 0}, "nothing is overdue yet"
    async with db.sessions() as s:
        await s.execute(
            text("UPDATE notices SET due_date = :d WHERE kind = 'feedback.requested'"),
            {"d": today() - timedelta(days=2)},
        )
        await s.commit()
    assert (await khoi.post(f"{ROUNDS}/{round_id}/reminders")).json() == {"sent": 5}
    assert (await khoi.post(f"{ROUNDS}/{round_id}/reminders")).json() == {"sent": 0}
    cau_giay = await party("cau_giay_system")
    reminders, _ = await pull_all(cau_giay, kind="feedback.reminder")
    assert len(reminders) == 2 and reminders[0]["payload"]["overdue_days"] == 2
    assert reminders[0]["thread_id"] == reminders[0]["payload"]["request_id"]
    # After the interval, one more each.
    async with db.sessions() as s:
        await s.execute(update(FeedbackRoundItem).values(reminded_at=datetime.now(UTC) - timedelta(days=30)))
        await s.commit()
    assert (await khoi.post(f"{ROUNDS}/{round_id}/reminders")).json() == {"sent": 5}


async def test_round_rules(party):
    khoi = await party("khoi_clerk")
    assert_problem(
        await khoi.post(ROUNDS, json={"year": 2026, "deadline": iso(today() - timedelta(days=1))}),
        422,
        "due_date_in_past",
    )
    assert_problem(await khoi.post(ROUNDS, json={"year": 1999, "deadline": iso(today())}), 422, "validation_error")
    district = await party("ba_dinh_clerk")
    assert_problem(await district.post(ROUNDS, json={"year": 2026, "deadline": iso(today())}), 403, "khoi_only")
    assert_problem(await khoi.get(f"{ROUNDS}/00000000-0000-0000-0000-000000000000"), 404, "round_not_found")


async def test_reconciliation_lists_open_items_in_each_partys_scope_and_exports_csv(party):
    khoi = await party("khoi_clerk")
    bd_card = await add_member(khoi, "ba-dinh")
    cg_card = await add_member(khoi, "cau-giay")
    old_intro = await push(khoi, introduction(bd_card))
    await push(khoi, introduction(cg_card))
    async with db.sessions() as s:  # the Ba Đình introduction is 40 days old
        await s.execute(
            update(Notice)
            .where(Notice.kind == "member.introduced", Notice.recipient_org == "ba-dinh")
            .values(created_at=datetime.now(UTC) - timedelta(days=40))
        )
        await s.commit()
    moved = await khoi.put(f"/api/v1/members/{bd_card}", json=member_body("dong-da"))
    assert moved.status_code == 200
    request = await push(
        khoi,
        {
            "kind": "feedback.requested",
            "member_card_no": cg_card,
            "payload": {"year": 2026, "due_date": iso(today() + timedelta(days=5))},
        },
    )
    violation_down = await push(khoi, violation(cg_card))
    cau_giay = await party("cau_giay_system")
    await pull_all(cau_giay)  # delivered, not acknowledged
    report = (await khoi.get("/api/v1/reports/reconciliation", params={"days": 30})).json()
    cats = {(i["category"], i["notice_id"]) for i in report["items"]}
    assert ("introduced_not_accepted", old_intro["id"]) in cats
    assert ("feedback_unanswered", request["id"]) in cats
    assert ("delivered_not_acknowledged", violation_down["id"]) in cats
    moves = [i for i in report["items"] if i["category"] == "residence_change_unacknowledged"]
    assert [m["recipient_org"] for m in moves] == ["dong-da"], "only the new district owes an acknowledgement"
    assert report["counts"]["introduced_not_accepted"] == 1
    # Cầu Giấy sees only what concerns it.
    theirs = (await cau_giay.get("/api/v1/reports/reconciliation")).json()
    assert theirs["items"] and all("cau-giay" in (i["sender_org"], i["recipient_org"]) for i in theirs["items"])
    r = await khoi.get("/api/v1/reports/reconciliation", params={"format": "csv", "days": 30})
    assert r.headers["content-type"].startswith("text/csv") and r.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == len(report["items"])
    assert list(rows[0])[:4] == ["Loại việc", "Mô tả", "Mã thông báo", "Loại thông báo"]
    intro = next(row for row in rows if row["Mã thông báo"] == old_intro["id"])
    assert "chưa tiếp nhận" in intro["Mô tả"]
    assert intro["Số thẻ đảng viên"] == bd_card and intro["Họ và tên đảng viên"] == member_body("ba-dinh")["full_name"]
    assert {row["Quá hạn"] for row in rows} <= {"Có", "Không"}
    assert (
        next(i for i in report["items"] if i["notice_id"] == old_intro["id"])["member_name"]
        == intro["Họ và tên đảng viên"]
    )


async def test_a_later_round_of_the_same_year_asks_only_members_not_yet_asked(party):
    khoi = await party("khoi_clerk")
    accepted = {"residence_status": "accepted", "residence_cell": "Chi bộ Tổ dân phố số 2"}
    first_batch = [await add_member(khoi, "ba-dinh", workplace_unit_code="dv-01", **accepted) for _ in range(3)]
    other = await add_member(khoi, "cau-giay", workplace_unit_code="dv-02", **accepted)
    deadline = iso(today() + timedelta(days=20))
    everyone = await _start(khoi, {"year": 2026, "deadline": deadline})
    assert everyone["totals"]["requested"] == 4
    late = await add_member(khoi, "ba-dinh", workplace_unit_code="dv-01", **accepted)
    progress = await _start(khoi, {"year": 2026, "deadline": deadline, "units": ["dv-01"]})
    assert progress["totals"] == {"requested": 1, "answered": 0, "overdue": 0, "skipped": 3}
    assert {s["reason"]: s["count"] for s in progress["skipped_reasons"]} == {"already_requested": 3}
    out, _ = await pull_all(khoi, box="outbox", kind="feedback.requested")
    asked = sorted(n["member_card_no"] for n in out)
    assert asked == sorted([*first_batch, other, late]), "one comment request per member and year"
    # Another year is another matter.
    next_year = await _start(khoi, {"year": 2027, "deadline": deadline, "units": ["dv-01"]})
    assert next_year["totals"]["requested"] == 4


async def test_a_round_in_many_batches_hands_each_request_out_once_in_order_beside_pushes(party, monkeypatch):
    from app.services import feedback

    monkeypatch.setattr(feedback, "BATCH", 2)  # several batches written at once, each numbering its own notices
    khoi, ba_dinh = await party("khoi_clerk"), await party("ba_dinh_system")
    accepted = {"residence_status": "accepted", "residence_cell": "Chi bộ Tổ dân phố số 4"}
    cards = [await add_member(khoi, "ba-dinh", **accepted) for _ in range(7)]
    await add_member(khoi, "ba-dinh", residence_status="moved_away")
    _, cursor = await pull_all(ba_dinh)
    before = await push(ba_dinh, violation(cards[0]))  # committed, not yet numbered when the round starts
    progress = await _start(khoi, {"year": 2026, "deadline": iso(today() + timedelta(days=20))})
    assert progress["totals"]["requested"] == 7 and progress["totals"]["skipped"] == 1
    after = await push(ba_dinh, violation(cards[1]))
    requests, _ = await pull_all(ba_dinh, cursor=cursor)
    assert sorted(n["member_card_no"] for n in requests) == sorted(cards), "each request handed out exactly once"
    reports, _ = await pull_all(khoi, kind="violation.reported")
    assert [n["id"] for n in reports] == [before["id"], after["id"]]
    async with db.sessions() as session:
        positions = (await session.execute(text("SELECT position FROM notices ORDER BY position"))).scalars().all()
    assert positions == list(range(1, len(positions) + 1)), "gapless, every notice numbered"


async def test_a_round_that_fails_in_a_batch_resumes_when_opened_again_asking_nobody_twice(party, monkeypatch):
    from app.repositories import feedback as rounds
    from app.services import feedback

    monkeypatch.setattr(feedback, "BATCH", 2)
    khoi = await party("khoi_clerk")
    accepted = {"residence_status": "accepted", "residence_cell": "Chi bộ Tổ dân phố số 5"}
    cards = [await add_member(khoi, "cau-giay", **accepted) for _ in range(7)]
    write_notices, calls = rounds.write_notices, []

    async def failing_third(session, rows, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the database went away")
        await write_notices(session, rows, **kw)

    monkeypatch.setattr(rounds, "write_notices", failing_third)
    body = {"year": 2026, "deadline": iso(today() + timedelta(days=20))}
    r = await khoi.post(ROUNDS, json=body)
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 60
    while (progress := (await khoi.get(f"{ROUNDS}/{r.json()['id']}")).json())["status"] == "running":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert progress["status"] == "failed" and progress["totals"]["requested"] < 7
    monkeypatch.setattr(rounds, "write_notices", write_notices)
    again = await _start(khoi, body, status=200)
    assert again["totals"]["requested"] == 7 and again["processed"] == 7
    out, _ = await pull_all(khoi, box="outbox", kind="feedback.requested")
    assert sorted(n["member_card_no"] for n in out) == sorted(cards), "each member asked once"


async def test_reminding_many_overdue_requests_in_one_call_sends_every_reminder(party):
    """One call that writes more rows than one combined statement carries (each reminder is a notice and its
    deliveries, held back for the request's closing write): they are written one by one in the request's
    transaction, every reminder sent once."""
    khoi = await party("khoi_clerk")
    accepted = {"residence_status": "accepted", "residence_cell": "Chi bộ Tổ dân phố số 7"}
    for _ in range(40):
        await add_member(khoi, "ba-dinh", workplace_unit_code="so-tu-phap", **accepted)
    round_id = (await _start(khoi, {"year": 2026, "deadline": iso(today() + timedelta(days=20))}))["id"]
    async with db.sessions() as s:
        await s.execute(
            text("UPDATE notices SET due_date = :d WHERE kind = 'feedback.requested'"),
            {"d": today() - timedelta(days=2)},
        )
        await s.commit()
    assert (await khoi.post(f"{ROUNDS}/{round_id}/reminders")).json() == {"sent": 40}
    reminders, _ = await pull_all(await party("ba_dinh_system"), kind="feedback.reminder")
    assert len(reminders) == 40 and len({r["thread_id"] for r in reminders}) == 40
