"""Bad input is explained in Vietnamese, field by field; malformed JSON says where (line and column)."""

from tests.exchange import member_body
from tests.helpers import assert_problem

NOTICES = "/api/v1/notices"
ENGLISH = ("Field required", "Input should", "Extra inputs", "String should", "JSON decode error", "Value error")


def _messages(r) -> dict[str, str]:
    return {e["field"]: e["message"] for e in r.json()["errors"]}


async def test_field_errors_are_vietnamese_and_name_the_field(party):
    khoi = await party("khoi_clerk")
    r = await khoi.post(NOTICES, json={"member_card_no": "01234567", "payload": {}})
    assert_problem(r, 422, "validation_error")
    assert _messages(r) == {"kind": "Thiếu 'kind'."} and "kind" in r.json()["detail"]
    r = await khoi.post(NOTICES, json={"kind": "violation.reported", "payload": {"summary": "x"}, "colour": "red"})
    messages = _messages(r)
    assert messages["member_card_no"] == "Thiếu trường bắt buộc.", messages
    assert "không được phép" in messages["colour"]
    assert "member_card_no" in r.json()["detail"] and "colour" in r.json()["detail"]
    body = member_body(full_name="x" * 201, birth_date="20-11-1985", residence_status="sleeping")
    r = await khoi.put("/api/v1/members/01234567", json=body)
    messages = _messages(r)
    assert messages["full_name"] == "Tối đa 200 ký tự."
    assert messages["birth_date"].startswith("Phải là ngày theo ISO 8601")
    assert (
        messages["residence_status"].startswith("Phải là một trong: 'introduced'")
        and " hoặc " in (messages["residence_status"])
    )
    for text in (*messages.values(), r.json()["detail"]):
        assert not any(word in text for word in ENGLISH), text


async def test_our_own_rules_keep_their_vietnamese_words_without_pydantics_prefix(party):
    khoi = await party("khoi_clerk")
    r = await khoi.put("/api/v1/members/01234567", json=member_body(residence_status="accepted"))
    assert_problem(r, 422, "validation_error")
    assert any(m.startswith("residence_cell: cần nêu chi bộ") for m in _messages(r).values()), r.json()


async def test_malformed_json_says_the_line_and_column(party):
    khoi = await party("khoi_clerk")
    body = '{\n  "kind": "violation.reported"\n  "member_card_no": "01234567"\n}'
    r = await khoi.post(NOTICES, content=body.encode(), headers={"Content-Type": "application/json"})
    assert_problem(r, 422, "validation_error")
    error = r.json()["errors"][0]
    assert (error["type"], error["line"], error["column"]) == ("json_invalid", 3, 3)
    assert error["message"] == "JSON không hợp lệ ở dòng 3, cột 3: thiếu dấu phẩy ','."
    assert r.json()["detail"] == error["message"]
    r = await khoi.post(NOTICES, content=b"{'kind': 1}", headers={"Content-Type": "application/json"})
    assert "dòng 1, cột 2: tên trường phải nằm trong dấu nháy kép" in r.json()["detail"]
