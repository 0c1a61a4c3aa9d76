"""Building blocks for exchange tests: members and notices as the Khối and districts would send them."""

import itertools
from datetime import date, timedelta

from app.infra.clock import today

_cards = itertools.count(10_000_001)


def new_card() -> str:
    return str(next(_cards))


def member_body(district: str = "ba-dinh", **overrides) -> dict:
    body = {
        "full_name": "Nguyễn Văn An",
        "birth_date": "1985-04-12",
        "citizen_id": "001085012345",
        "workplace_unit_code": "so-tu-phap",
        "workplace_unit_name": "Đảng bộ Sở Tư pháp",
        "residence_org": district,
        "residence_ward": "Phường Kim Mã",
        "residence_address": "Số 12 ngõ 5 Kim Mã",
        "residence_since": "2020-06-01",
        "residence_status": "introduced",
    }
    body.update(overrides)
    return body


async def add_member(khoi, district: str = "ba-dinh", **overrides) -> str:
    card = overrides.pop("card", None) or new_card()
    r = await khoi.put(f"/api/v1/members/{card}", json=member_body(district, **overrides))
    assert r.status_code == 201, r.text
    return card


def iso(d: date) -> str:
    return d.isoformat()


def introduction(card: str) -> dict:
    return {
        "kind": "member.introduced",
        "member_card_no": card,
        "payload": {
            "letter_no": "125-GGT/ĐUK",
            "issued_on": iso(today()),
            "ward": "Phường Kim Mã",
            "address": "Số 12 ngõ 5 Kim Mã",
            "residential_group": "Tổ dân phố số 7",
        },
    }


def feedback_request(card: str, year: int = 2026, due_in_days: int = 20) -> dict:
    return {
        "kind": "feedback.requested",
        "member_card_no": card,
        "payload": {"year": year, "due_date": iso(today() + timedelta(days=due_in_days))},
    }


def violation(card: str) -> dict:
    return {
        "kind": "violation.reported",
        "member_card_no": card,
        "payload": {
            "summary": "Không tham gia sinh hoạt nơi cư trú 3 kỳ liên tiếp",
            "observed_on": iso(today()),
            "severity": "medium",
        },
    }


def discipline(card: str, form: str = "reprimand") -> dict:
    return {
        "kind": "discipline.decided",
        "member_card_no": card,
        "payload": {
            "form": form,
            "decision_no": "45-QĐ/ĐUK",
            "decided_on": iso(today()),
            "authority": "Ban Thường vụ Đảng ủy Khối",
        },
    }


def info_request(card: str, question: str = "Đề nghị cho biết địa chỉ mới.") -> dict:
    return {"kind": "info.requested", "member_card_no": card, "payload": {"question": question}}


def accepted(cell: str = "Chi bộ Tổ dân phố số 7") -> dict:
    return {"kind": "member.accepted", "payload": {"ward": "Phường Kim Mã", "cell": cell, "accepted_on": iso(today())}}


def feedback_given(year: int = 2026) -> dict:
    return {
        "kind": "feedback.given",
        "payload": {
            "year": year,
            "cell": "Chi bộ Tổ dân phố số 7",
            "reviewed_on": iso(today()),
            "comments": "Gương mẫu thực hiện nghĩa vụ công dân nơi cư trú.",
        },
    }


async def push(party, body: dict, **kw) -> dict:
    r = await party.post("/api/v1/notices", json=body, **kw)
    assert r.status_code == 201, r.text
    return r.json()


async def pull_all(party, box: str = "inbox", cursor: str | None = None, **params) -> tuple[list[dict], str | None]:
    """Every notice available now, following the cursor; returns them and the cursor to resume from."""
    items = []
    while True:
        query = {"limit": 50, **params, **({"cursor": cursor} if cursor else {})}
        r = await party.get(f"/api/v1/notices/{box}", params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return items, cursor
