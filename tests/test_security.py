"""Security hardening: what an attacker holding a committee's credentials must not be able to do."""

import base64
import json

import pytest

from tests.helpers import assert_problem


def _cursor(values) -> str:
    raw = json.dumps(values).encode() if not isinstance(values, bytes) else values
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


CRAFTED = [
    [10**30, 1],
    [1, 10**30],
    [-(10**30), 1],
    b"[1e308, 1]",
    b"[1, 1e308]",
    b"[1.5, 1]",
    b"[NaN, 1]",
    b"[Infinity, 1]",
]


@pytest.mark.parametrize("values", CRAFTED, ids=str)
@pytest.mark.parametrize("box", ["inbox", "outbox"])
async def test_a_crafted_notice_cursor_is_400_not_500(party, box, values):
    ba_dinh = await party("ba_dinh_system")
    r = await ba_dinh.get(f"/api/v1/notices/{box}", params={"cursor": _cursor(values)})
    assert_problem(r, 400, "invalid_cursor")


@pytest.mark.parametrize("values", [[10**30], [-(10**30)], b"[1e308]", b"[2.5]", b"[Infinity]"], ids=str)
async def test_a_crafted_audit_cursor_is_400_not_500(party, values):
    auditor = await party("khoi_auditor")
    r = await auditor.get("/api/v1/audit/entries", params={"cursor": _cursor(values)})
    assert_problem(r, 400, "invalid_cursor")
