"""Object- and function-level access over every route of the OpenAPI document (OWASP API1, API5).

Every route must be declared in POLICY: a new route fails this test until it says who may call it."""

import re
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from app.main import app
from tests import files
from tests.exchange import add_member, introduction, iso, new_card, push
from tests.helpers import assert_problem

# Who may call each route: public, party (any authenticated committee), worker (clerk/officer), organiser
# (admin/clerk/officer), subscriber (clerk/officer/admin), admin (staff admin), auditor.
POLICY = {
    "healthz": "public", "readyz": "public", "keys.jwks": "public", "auth.token": "public",
    "organization.list": "party", "organization.read": "party",
    "member.search": "worker", "member.read": "worker", "member.upsert": "worker",
    "notice.push": "worker", "notice.inbox": "worker", "notice.outbox": "worker", "notice.read": "worker",
    "notice.ack": "worker", "notice.reply": "worker",
    "document.upload": "worker", "document.read": "worker", "document.content": "worker",
    "document.provenance": "worker", "document.correct": "worker",
    "feedback_round.start": "organiser", "feedback_round.read": "worker", "feedback_round.remind": "organiser",
    "report.reconciliation": "worker",
    "subscription.create": "subscriber", "subscription.list": "subscriber", "subscription.delete": "subscriber",
    "subscription.rotate": "subscriber", "subscription.deliveries": "subscriber",
    "subscription.redeliver": "subscriber",
    "supplier_key.register": "admin", "supplier_key.list": "worker", "supplier_key.revoke": "admin",
    "account.create": "admin", "account.list": "admin", "account.read": "admin", "account.disable": "admin",
    "account.enable": "admin", "account.rotate_secret": "admin",
    "audit.entries": "auditor", "audit.export": "auditor", "audit.verify": "auditor", "audit.checkpoints": "auditor",
    "audit.checkpoint": "auditor",
    "registry.plan": "admin", "registry.apply": "admin", "registry.editions": "admin",
}  # fmt: skip
# A caller that lacks the role for each class (all of them valid tokens of real accounts).
WRONG_ROLE = {
    "party": None,
    "worker": "khoi_auditor",
    "organiser": "khoi_auditor",
    "subscriber": "khoi_auditor",
    "admin": "khoi_clerk",
    "auditor": "khoi_clerk",
}


@dataclass(frozen=True)
class Op:
    """One operation of the OpenAPI document."""

    name: str
    method: str
    path: str

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


def _operations() -> list[Op]:
    return [
        Op(spec["operationId"], method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method, spec in item.items()
    ]


def test_every_route_declares_who_may_call_it():
    names = {op.name for op in _operations()}
    undeclared = sorted(names - set(POLICY))
    assert undeclared == [], f"declare these routes in POLICY: {undeclared}"
    assert sorted(set(POLICY) - names) == []


def _url(op: Op, ids: dict[str, str]) -> str:
    path = op.path
    for name in op.params:
        path = path.replace("{" + name + "}", ids.get(name, str(uuid.uuid4())))
    return path


@pytest.fixture
async def ids(party, request) -> dict[str, str]:
    """Real objects of the Khối and Ba Đình, for object-level checks: a member living in Ba Đình, a notice from
    the Khối to Ba Đình carrying a document, and (for the routes that take one: opening it costs seconds) a comment
    round that asked Ba Đình and no one else."""
    khoi = await party("khoi_officer")
    card = await add_member(khoi, "ba-dinh", residence_status="accepted", residence_cell="Chi bộ Tổ dân phố số 7")
    r = await khoi.post("/api/v1/documents", files={"file": ("bien-ban.pdf", files.pdf())})
    assert r.status_code == 201, r.text
    document_id = r.json()["id"]
    notice = await push(khoi, {**introduction(card), "document_ids": [document_id]})
    found = {
        "party_card_no": card,
        "notice_id": notice["id"],
        "document_id": document_id,
        "code": "ba-dinh",
        "kid": "unknown-kid",
    }
    op = getattr(request.node, "callspec", None) and request.node.callspec.params.get("op")
    if op is None or "round_id" in op.params:
        deadline = iso(date.today() + timedelta(days=20))
        r = await khoi.post("/api/v1/feedback-rounds", json={"year": 2026, "deadline": deadline})
        assert r.status_code == 201, r.text
        found["round_id"] = r.json()["id"]
    return found


# What each public route answers a caller without a token (the real outcome, so a 500 cannot pass).
async def _check_healthz(r):
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def _check_readyz(r):
    assert r.status_code == 200 and r.json() == {"status": "ready"}


async def _check_jwks(r):
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    assert keys and all(k["kid"] and k["kty"] == "EC" and "d" not in k for k in keys)


async def _check_token(r):  # no form at all: which grant is missing, not a refused login
    body = assert_problem(r, 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["grant_type"]


PUBLIC_OUTCOME = {
    "healthz": _check_healthz,
    "readyz": _check_readyz,
    "keys.jwks": _check_jwks,
    "auth.token": _check_token,
}


@pytest.mark.parametrize("op", _operations(), ids=lambda op: op.name)
async def test_without_a_token_only_public_routes_answer(client, op, ids):
    r = await client.request(op.method, _url(op, ids))
    if POLICY[op.name] == "public":
        await PUBLIC_OUTCOME[op.name](r)
    else:
        assert_problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("op", [o for o in _operations() if WRONG_ROLE.get(POLICY[o.name])], ids=lambda o: o.name)
async def test_a_caller_without_the_role_gets_403(party, op, ids):
    caller = await party(WRONG_ROLE[POLICY[op.name]])
    r = await caller.client.request(op.method, _url(op, ids), headers={"Authorization": f"Bearer {caller.token}"})
    assert_problem(r, 403)


@pytest.mark.parametrize("op", [o for o in _operations() if POLICY[o.name] == "admin"], ids=lambda o: o.name)
async def test_a_system_token_is_refused_on_staff_only_routes(party, op, ids):
    system_admin = await party("ba_dinh_admin_system")
    r = await system_admin.client.request(
        op.method, _url(op, ids), headers={"Authorization": f"Bearer {system_admin.token}"}
    )
    assert_problem(r, 403, "staff_only")


def _elsewhere(ids: dict[str, str]) -> dict[str, str]:
    """Ids of the same kinds that exist nowhere."""
    return {**ids, "party_card_no": new_card(), **{k: str(uuid.uuid4()) for k in ids if k.endswith("_id")}}


@pytest.mark.parametrize(
    "op",
    [o for o in _operations() if o.method == "GET" and o.params and POLICY[o.name] == "worker"],
    ids=lambda o: o.name,
)
async def test_another_districts_ids_never_reveal_that_they_exist(party, op, ids):
    # The objects exist and Ba Đình sees them...
    insider = await party("ba_dinh_system")
    assert (await insider.get(_url(op, ids))).status_code == 200
    outsider = await party("cau_giay_system")
    r = await outsider.get(_url(op, ids))
    if op.name == "feedback_round.read":
        # ...a round is the Khối's and every district reads its own part of it: Cầu Giấy's part is empty, and
        # nothing of Ba Đình's shows.
        assert r.status_code == 200, r.text
        part = r.json()
        assert part["by_district"] == [] and part["by_unit"] == [] and part["skipped_reasons"] == []
        assert part["processed"] == 0 and set(part["totals"].values()) == {0}
        assert_problem(await outsider.get(_url(op, _elsewhere(ids))), 404, "round_not_found")
        return
    # ...Cầu Giấy gets the same 404 as for an id that exists nowhere.
    assert_problem(r, 404)
    r2 = await outsider.get(_url(op, _elsewhere(ids)))
    assert_problem(r2, 404, r.json()["code"])
    assert r2.json()["detail"] == r.json()["detail"]


async def test_method_switching_and_path_case_variants_are_refused(party, ids):
    caller = await party("khoi_clerk")
    paths: dict[str, set[str]] = {}
    for op in _operations():
        paths.setdefault(_url(op, ids), set()).add(op.method)
    for path, allowed in paths.items():
        for method in {"GET", "POST", "PUT", "DELETE", "PATCH"} - allowed - {"HEAD"}:
            r = await caller.client.request(method, path, headers={"Authorization": f"Bearer {caller.token}"})
            assert r.status_code in (401, 404, 405), (method, path, r.status_code)
            assert r.status_code != 200
    for variant in (
        "/API/v1/notices/inbox",
        "/api/V1/notices/inbox",
        "/api/v1/Notices/Inbox",
        "/api/v1/notices/inbox/",
        "/api/v1//notices/inbox",
        "/api/v1/notices/%2e%2e/accounts",
    ):
        r = await caller.get(variant)
        assert r.status_code in (307, 404), (variant, r.status_code)
