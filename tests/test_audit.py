"""The audit log: every read and write leaves an entry, and any tampering is detected and located."""

import asyncio
import json
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from jwcrypto import jwk, jws
from sqlalchemy import text

from app.infra.db import db
from app.services.audit import verify
from tests import files
from tests.audit_tools import entries, rewrite_chain, tamper
from tests.conftest import IS_POSTGRES
from tests.exchange import accepted, add_member, introduction, pull_all, push, violation
from tests.helpers import assert_problem
from tests.receiver import start_receiver
from tests.test_webhooks import subscribe

AUDIT = "/api/v1/audit"


def _shape(entry: dict) -> tuple:
    return entry["action"], entry["outcome"], entry["http_status"], entry["actor_org"]


async def test_every_call_leaves_exactly_the_expected_entries_including_denials(client, party):
    khoi = await party("khoi_clerk")
    ba_dinh = await party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh")
    intro = await push(khoi, introduction(card))
    await ba_dinh.get("/api/v1/notices/inbox")
    await ba_dinh.get(f"/api/v1/notices/{intro['id']}")
    await ba_dinh.post(f"/api/v1/notices/{intro['id']}/ack")
    await ba_dinh.post(f"/api/v1/notices/{intro['id']}/replies", json=accepted())
    await ba_dinh.get(f"/api/v1/members/{card}")
    outsider = await party("cau_giay_system")
    await outsider.get(f"/api/v1/notices/{intro['id']}")  # 404: not theirs
    await client.get("/api/v1/notices/inbox", headers={"Authorization": "Bearer forged.token.value"})
    await client.post(
        "/api/v1/auth/token", data={"grant_type": "password", "username": "t.khoi.clerk", "password": "wrong"}
    )
    await khoi.post("/api/v1/notices", json={"kind": "violation.reported", "member_card_no": card, "payload": {}})
    await ba_dinh.get("/api/v1/accounts")  # 403: not an admin

    auditor = await party("khoi_auditor")
    log = await entries(auditor)
    got = [_shape(e) for e in log if e["action"] != "audit.entries"]
    assert got == [
        ("auth.token", "allowed", 200, "khoi-cqtp"),
        ("auth.token", "allowed", 200, "ba-dinh"),
        ("member.upsert", "allowed", 201, "khoi-cqtp"),
        ("notice.push", "allowed", 201, "khoi-cqtp"),
        ("notice.inbox", "allowed", 200, "ba-dinh"),
        ("notice.read", "allowed", 200, "ba-dinh"),
        ("notice.ack", "allowed", 200, "ba-dinh"),
        ("notice.reply", "allowed", 201, "ba-dinh"),
        ("member.read", "allowed", 200, "ba-dinh"),
        ("auth.token", "allowed", 200, "cau-giay"),
        ("notice.read", "denied", 404, "cau-giay"),
        ("notice.inbox", "denied", 401, None),
        ("auth.token", "denied", 401, None),
        ("notice.push", "failed", 422, "khoi-cqtp"),
        ("account.list", "denied", 403, "ba-dinh"),
        ("auth.token", "allowed", 200, "khoi-cqtp"),
    ]
    by_action = {(e["action"], e["http_status"]): e for e in log}
    pushed = by_action[("notice.push", 201)]
    assert pushed["resource_id"] == intro["id"] and pushed["member_ref"] == card
    assert pushed["counterpart_org"] == "ba-dinh" and pushed["actor_login"] == "t.khoi.clerk" and pushed["token_jti"]
    assert pushed["request_id"] and pushed["client_address"] == "127.0.0.1"
    inbox = by_action[("notice.inbox", 200)]
    assert inbox["details"] == {"count": 1, "members": [card]}
    refused_login = next(e for e in log if e["action"] == "auth.token" and e["outcome"] == "denied")
    assert refused_login["actor_login"] == "t.khoi.clerk" and refused_login["details"]["code"] == "invalid_grant"
    forged = by_action[("notice.inbox", 401)]
    assert forged["actor_account"] is None and forged["details"]["code"] == "invalid_token"
    # No secrets or tokens in the log.
    dump = json.dumps(log)
    assert "wrong" not in dump and "forged.token" not in dump and "pw-t.khoi.clerk" not in dump


async def test_entries_filter_and_paginate_and_a_district_auditor_sees_only_its_part(party):
    khoi = await party("khoi_clerk")
    card_bd = await add_member(khoi, "ba-dinh")
    card_cg = await add_member(khoi, "cau-giay")
    await push(khoi, violation(card_bd))
    await push(khoi, violation(card_cg))
    auditor = await party("khoi_auditor")
    assert [e["member_ref"] for e in await entries(auditor, action="notice.push")] == [card_bd, card_cg]
    assert len(await entries(auditor, member=card_cg)) == 2
    assert await entries(auditor, outcome="denied") == []
    page = (await auditor.get(f"{AUDIT}/entries", params={"limit": 2})).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    district = await party("ba_dinh_auditor")
    visible = await entries(district)
    assert visible and all("ba-dinh" in (e["actor_org"], e["counterpart_org"]) for e in visible)
    assert card_bd in {e["member_ref"] for e in visible} and card_cg not in {e["member_ref"] for e in visible}
    # Clerks do not read the audit log.
    assert_problem(await khoi.get(f"{AUDIT}/entries"), 403, "role_required")


async def test_export_streams_json_lines(party):
    khoi = await party("khoi_clerk")
    await add_member(khoi, "ba-dinh")
    auditor = await party("khoi_auditor")
    r = await auditor.get(f"{AUDIT}/entries/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert [row["action"] for row in rows][:3] == ["auth.token", "member.upsert", "auth.token"]
    # The export itself is on the record.
    assert [e["action"] for e in await entries(auditor, action="audit.export")] == ["audit.export"]


async def _clean_report(auditor) -> dict:
    r = await auditor.get(f"{AUDIT}/verify")
    assert r.status_code == 200, r.text
    return r.json()


async def _busy_log(party, notices: int = 4):
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    for _ in range(notices):
        await push(khoi, violation(card))
    auditor = await party("khoi_auditor")
    report = await _clean_report(auditor)
    assert report["ok"] and report["size"] >= notices + 3 and report["unsealed"] == 0, report
    return auditor


async def _entry_seq_at(position: int) -> int:
    async with db.sessions() as s:
        return (
            await s.execute(text("SELECT entry_seq FROM audit_chain WHERE position = :p"), {"p": position})
        ).scalar()


async def test_a_changed_byte_is_detected_and_located(party):
    auditor = await _busy_log(party)
    seq = await _entry_seq_at(3)
    await tamper("UPDATE audit_entries SET http_status = 200 WHERE seq = :s", s=seq)
    report = await _clean_report(auditor)
    assert report["ok"] is False
    assert report["first_problem"]["problem"] == "entry_altered" and report["first_problem"]["position"] == 3
    assert report["first_problem"]["entry_seq"] == seq


async def test_a_verification_in_small_pages_reads_ahead_and_still_locates_a_change_in_a_later_page(party):
    auditor = await _busy_log(party)
    whole = await verify(sessions=db.sessions)
    paged = await verify(sessions=db.sessions, page=2)  # many pages: each next one is read while one is hashed
    assert paged.ok and (paged.size, paged.head_hash) == (whole.size, whole.head_hash) and whole.size > 6
    seq = await _entry_seq_at(5)  # in the third page
    await tamper("UPDATE audit_entries SET http_status = 200 WHERE seq = :s", s=seq)
    report = await verify(sessions=db.sessions, page=2)
    assert report.ok is False
    assert (report.first_problem.problem, report.first_problem.position) == ("entry_altered", 5)
    assert report.first_problem.entry_seq == seq
    assert (await _clean_report(auditor))["first_problem"]["position"] == 5


async def test_a_deleted_entry_is_detected(party):
    auditor = await _busy_log(party)
    seq = await _entry_seq_at(2)
    await tamper("DELETE FROM audit_entries WHERE seq = :s", s=seq)
    report = await _clean_report(auditor)
    assert report["first_problem"]["problem"] == "entry_missing" and report["first_problem"]["position"] == 2


async def test_a_deleted_entry_and_its_chain_link_is_detected(party):
    auditor = await _busy_log(party)
    seq = await _entry_seq_at(2)
    await tamper("DELETE FROM audit_chain WHERE position = 2")
    await tamper("DELETE FROM audit_entries WHERE seq = :s", s=seq)
    report = await _clean_report(auditor)
    assert report["first_problem"]["problem"] == "entry_missing" and report["first_problem"]["position"] == 2


async def test_reordered_entries_are_detected(party):
    auditor = await _busy_log(party)
    a, b = await _entry_seq_at(2), await _entry_seq_at(3)
    await tamper("UPDATE audit_chain SET entry_seq = -1 WHERE position = 2")
    await tamper("UPDATE audit_chain SET entry_seq = :a WHERE position = 3", a=a)
    await tamper("UPDATE audit_chain SET entry_seq = :b WHERE position = 2", b=b)
    report = await _clean_report(auditor)
    assert report["ok"] is False and report["first_problem"]["position"] == 2


async def test_an_entry_inserted_into_the_past_is_detected(party):
    auditor = await _busy_log(party)
    seq = await _entry_seq_at(1)
    when = datetime(2026, 1, 1, tzinfo=UTC) if IS_POSTGRES else "2026-01-01 00:00:00"
    await tamper(
        "INSERT INTO audit_entries (seq, occurred_at, action, outcome, http_status, details) "
        "VALUES (:seq, :when, 'notice.push', 'allowed', 201, '{}')",
        seq=-seq,
        when=when,
    )
    report = await _clean_report(auditor)
    assert report["first_problem"]["problem"] == "entry_inserted" and report["first_problem"]["entry_seq"] == -seq


async def test_a_truncated_tail_and_a_rewritten_history_are_caught_by_checkpoints(party):
    auditor = await _busy_log(party)
    checkpoint = (await auditor.post(f"{AUDIT}/checkpoints")).json()
    kept = checkpoint["jws"]
    size = checkpoint["size"]
    # The attacker removes the last entries and every stored checkpoint; the committee kept its own copy.
    last = size - 1
    seq = await _entry_seq_at(last)
    await tamper("DELETE FROM audit_chain WHERE position = :p", p=last)
    await tamper("DELETE FROM audit_entries WHERE seq = :s", s=seq)
    await tamper("DELETE FROM audit_checkpoints")
    async with db.sessions() as session:  # checked before anything new is sealed: a plain truncated tail
        plain = await verify(session=session, presented=[kept])
    assert plain.first_problem.problem == "tail_truncated" and plain.first_problem.position == last
    r = await auditor.get(f"{AUDIT}/verify", params={"checkpoint": kept})
    report = r.json()
    # New entries (this very verification's) were sealed after the cut, so the kept head no longer matches
    # at the checkpoint's last position; with no new entries it would be reported as a truncated tail.
    assert report["ok"] is False, report
    assert report["first_problem"]["problem"] in ("tail_truncated", "history_rewritten")
    assert report["first_problem"]["position"] == last
    # Rewriting an old entry and recomputing every later hash still contradicts the signed checkpoint.
    await tamper("UPDATE audit_entries SET http_status = 299 WHERE seq = :s", s=await _entry_seq_at(1))
    await rewrite_chain()
    report = (await auditor.get(f"{AUDIT}/verify", params={"checkpoint": kept})).json()
    assert report["first_problem"]["problem"] in ("history_rewritten", "tail_truncated")
    report = (await auditor.get(f"{AUDIT}/verify")).json()
    assert report["ok"] is True  # without a kept checkpoint the rewrite is self-consistent: why committees keep them


async def test_a_forged_checkpoint_is_refused(party):
    auditor = await _busy_log(party)
    r = await auditor.get(f"{AUDIT}/verify", params={"checkpoint": "eyJhbGciOiJub25lIn0.eyJzaXplIjo5OTl9."})
    assert_problem(r, 400, "invalid_checkpoint")


async def test_checkpoints_verify_with_an_independent_jose_library_and_the_jwks(client, party):
    auditor = await _busy_log(party)
    checkpoint = (await auditor.post(f"{AUDIT}/checkpoints")).json()
    keys = jwk.JWKSet.from_json((await client.get("/.well-known/jwks.json")).text)
    token = jws.JWS()
    token.deserialize(checkpoint["jws"])
    kid = token.jose_header["kid"]
    token.verify(keys.get_key(kid), alg="ES256")
    claims = json.loads(token.payload)
    assert claims["size"] == checkpoint["size"] and claims["head_hash"] == checkpoint["head_hash"]
    listed = (await auditor.get(f"{AUDIT}/checkpoints")).json()["items"]
    assert listed[0]["jws"] == checkpoint["jws"]


@pytest.fixture
async def receiver():
    rec, server, task = await start_receiver()
    yield rec
    server.should_exit = True
    await task


@asynccontextmanager
async def _refusing_push_entries():
    """While inside, the database refuses to store the audit entry of a push."""
    async with db.sessions() as s:
        if IS_POSTGRES:
            await s.execute(
                text(
                    "CREATE FUNCTION refuse_push() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "IF NEW.action = 'notice.push' THEN RAISE EXCEPTION 'audit storage failure'; END IF; "
                    "RETURN NEW; END $$"
                )
            )
            await s.execute(
                text(
                    "CREATE TRIGGER refuse_push BEFORE INSERT ON audit_entries FOR EACH ROW "
                    "EXECUTE FUNCTION refuse_push()"
                )
            )
        else:
            await s.execute(
                text(
                    "CREATE TRIGGER refuse_push BEFORE INSERT ON audit_entries "
                    "WHEN NEW.action = 'notice.push' BEGIN SELECT RAISE(ABORT, 'audit storage failure'); "
                    "END"
                )
            )
        await s.commit()
    try:
        yield
    finally:
        async with db.sessions() as s:
            await s.execute(text("DROP TRIGGER refuse_push" + (" ON audit_entries" if IS_POSTGRES else "")))
            if IS_POSTGRES:
                await s.execute(text("DROP FUNCTION refuse_push()"))
            await s.commit()


async def test_when_the_audit_entry_cannot_be_written_the_change_is_rolled_back_with_503(party):
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    async with _refusing_push_entries():
        r = await khoi.post("/api/v1/notices", json=violation(card))
        assert_problem(r, 503, "audit_unavailable")
        assert r.headers["retry-after"]
    out = (await khoi.get("/api/v1/notices/outbox")).json()["items"]
    assert out == [], "the notice must not exist without its audit entry"


async def test_a_push_whose_closing_statement_fails_leaves_nothing_and_its_key_stays_free(party, receiver):
    """A push writes its notice, the document it carries, the recipient's webhook delivery, its audit entry and its
    idempotency record together (on PostgreSQL in one statement, its whole transaction): if the last of them fails,
    none exists, and a retry with the same key creates the notice once."""
    khoi, ba_dinh = await party("khoi_officer"), await party("ba_dinh_admin")
    card = await add_member(khoi, "ba-dinh")
    await subscribe(ba_dinh, receiver)
    doc = await khoi.post("/api/v1/documents", files={"file": ("bien-ban.pdf", files.pdf("Biên bản"), "x/y")})
    assert doc.status_code == 201, doc.text
    body = {**violation(card), "document_ids": [doc.json()["id"]]}
    key = {"Idempotency-Key": "closing-" + uuid.uuid4().hex}
    async with _refusing_push_entries():
        assert_problem(await khoi.post("/api/v1/notices", json=body, headers=key), 503, "audit_unavailable")
    async with db.sessions() as s:
        counts = [
            (await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar()  # noqa: S608 - fixed names
            for table in ("notices", "notice_documents", "deliveries", "idempotency_keys")
        ]
    assert counts == [0, 0, 0, 0]
    first = await khoi.post("/api/v1/notices", json=body, headers=key)
    assert first.status_code == 201, first.text
    again = await khoi.post("/api/v1/notices", json=body, headers=key)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() and first.json()["documents"][0]["id"] == doc.json()["id"]
    inbox, _ = await pull_all(await party("ba_dinh_clerk"))
    assert [n["id"] for n in inbox] == [first.json()["id"]]
    async with db.sessions() as s:
        delivered_for = (await s.execute(text("SELECT notice_id FROM deliveries"))).scalars().all()
    assert [str(n).replace("-", "") for n in delivered_for] == [first.json()["id"].replace("-", "")]


@pytest.mark.skipif(not IS_POSTGRES, reason="database-level append-only triggers are PostgreSQL's")
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entries SET http_status = 200",
        "DELETE FROM audit_entries",
        "TRUNCATE audit_entries",
        "UPDATE audit_chain SET chain_hash = 'x'",
        "DELETE FROM audit_chain",
        "TRUNCATE audit_chain",
        "DELETE FROM audit_checkpoints",
        "TRUNCATE audit_checkpoints",
    ],
)
async def test_the_audit_tables_are_append_only_in_postgresql(party, statement):
    auditor = await _busy_log(party, notices=1)
    assert (await auditor.post(f"{AUDIT}/checkpoints")).status_code == 201
    async with db.sessions() as s:
        with pytest.raises(Exception, match="append-only"):
            await s.execute(text(statement))
        await s.rollback()


async def test_concurrent_writers_produce_one_linear_verifiable_log(party):
    khoi = await party("khoi_clerk")
    officer = await party("khoi_officer")
    ba_dinh = await party("ba_dinh_system")
    card = await add_member(khoi, "ba-dinh")
    from app.services.audit import seal

    async def writer(p, n):
        for _ in range(n):
            await p.post("/api/v1/notices", json=violation(card))

    async def sealer():
        for _ in range(10):
            async with db.sessions() as session:
                await seal(session=session)
                await session.commit()
            await asyncio.sleep(0)

    await asyncio.gather(writer(khoi, 10), writer(officer, 10), writer(ba_dinh, 10), sealer())
    auditor = await party("khoi_auditor")
    report = await _clean_report(auditor)
    assert report["ok"] and report["unsealed"] == 0
    all_entries = await entries(auditor)
    assert report["size"] >= len(all_entries) - 1  # the last listing itself may still be unsealed


def test_every_api_route_takes_the_request_session_that_writes_its_audit_entry():
    import importlib
    import inspect
    import pkgutil

    import app.routers

    unaudited = []
    for module in pkgutil.iter_modules(app.routers.__path__):
        router = getattr(importlib.import_module(f"app.routers.{module.name}"), "router", None)
        for route in getattr(router, "routes", []):
            path = (router.prefix or "") + route.path
            params = inspect.signature(route.endpoint).parameters.values()
            if path.startswith("/api/v1/") and not any("get_session" in str(p.annotation) for p in params):
                unaudited.append(route.name)
    assert unaudited == []


async def _large_sealed_log(entries_count: int) -> None:
    """A long log, sealed, written straight into the tables (as if by many earlier requests)."""
    from app.models.base import utcnow
    from app.services.audit import seal

    now = utcnow()
    rows = [
        {"occurred_at": now, "action": "notice.pull", "outcome": "allowed", "http_status": 200, "details": {}}
        for _ in range(entries_count)
    ]
    from app.models.audit import AuditEntry

    async with db.sessions() as session:
        await session.execute(AuditEntry.__table__.insert(), rows)
        await session.commit()
    async with db.sessions() as session:
        await seal(session=session, max_batches=10_000)
        await session.commit()


async def test_a_pull_is_answered_while_a_verification_runs(party):
    """Verification hashes page by page off the event loop: a pull that starts with it finishes before it."""
    khoi = await party("khoi_clerk")
    ba_dinh = await party("ba_dinh_system")
    auditor = await party("khoi_auditor")
    card = await add_member(khoi, "ba-dinh")
    await push(khoi, violation(card))
    await _large_sealed_log(12_000)
    finished: list[str] = []

    async def verification():
        r = await auditor.get(f"{AUDIT}/verify")
        assert r.status_code == 200 and r.json()["ok"], r.text
        finished.append("verify")

    async def pull():
        await asyncio.sleep(0)  # the verification has started
        r = await ba_dinh.get("/api/v1/notices/inbox")
        assert r.status_code == 200 and r.json()["items"], r.text
        finished.append("pull")

    await asyncio.gather(verification(), pull())
    assert finished == ["pull", "verify"]


async def test_a_district_auditor_reads_the_last_verification_and_cannot_start_one(party):
    district = await party("ba_dinh_auditor")
    r = await district.get(f"{AUDIT}/verify")
    assert_problem(r, 404, "audit_not_verified_yet")
    khoi = await party("khoi_auditor")
    full = (await khoi.get(f"{AUDIT}/verify")).json()
    assert full["ok"] and full["summary"] is False and full["resumed_from"] is None
    await push(await party("khoi_clerk"), violation(await add_member(await party("khoi_clerk"), "ba-dinh")))
    summary = (await district.get(f"{AUDIT}/verify")).json()
    assert summary["summary"] is True
    assert (summary["size"], summary["head_hash"], summary["verified_at"]) == (
        full["size"],
        full["head_hash"],
        full["verified_at"],
    ), "the recorded result, not a new recomputation"


async def test_a_verification_resumes_from_the_last_verified_checkpoint(party):
    auditor = await _busy_log(party)
    checkpoint = (await auditor.post(f"{AUDIT}/checkpoints")).json()
    assert (await _clean_report(auditor))["ok"]
    khoi = await party("khoi_clerk")
    await push(khoi, violation(await add_member(khoi, "ba-dinh")))
    resumed = (await auditor.get(f"{AUDIT}/verify", params={"resume": "true"})).json()
    assert resumed["ok"] and resumed["resumed_from"] == checkpoint["size"], resumed
    # A change after the resume point is still found; one before it needs a full run.
    seq = await _entry_seq_at(resumed["size"] - 1)
    await tamper("UPDATE audit_entries SET http_status = 299 WHERE seq = :s", s=seq)
    report = (await auditor.get(f"{AUDIT}/verify", params={"resume": "true"})).json()
    assert report["first_problem"]["problem"] == "entry_altered", report


async def test_a_late_commit_is_chained_at_the_head_and_is_not_tampering(party):
    """An entry whose request began before others but committed after they were chained (a lower seq) is chained
    when found; only an entry dated before the late-commit window is reported as inserted."""
    auditor = await _busy_log(party)
    seq = await _entry_seq_at(1)
    from app.models.base import utcnow

    await tamper(
        "INSERT INTO audit_entries (seq, occurred_at, action, outcome, http_status, details) "
        "VALUES (:seq, :when, 'notice.push', 'allowed', 201, '{}')",
        seq=-seq,
        when=utcnow() if IS_POSTGRES else utcnow().strftime("%Y-%m-%d %H:%M:%S.%f"),
    )
    report = await _clean_report(auditor)
    assert report["ok"] is True and report["unsealed"] == 0, report
    async with db.sessions() as s:
        position = (
            await s.execute(text("SELECT position FROM audit_chain WHERE entry_seq = :s"), {"s": -seq})
        ).scalar()
    assert position is not None and position > 1


async def test_a_backup_restored_long_after_it_was_taken_still_chains_its_unchained_entries(party):
    """A backup holds entries committed but not chained yet; restored a day later, they are late commits, not
    insertions: the window counts from the newest link's sealing time, not from the wall clock."""
    from datetime import timedelta

    from app.models.base import utcnow

    auditor = await _busy_log(party)
    day = timedelta(days=1)
    await tamper("UPDATE audit_chain SET sealed_at = :t", t=utcnow() - day)  # the log as it was a day ago
    when = utcnow() - day + timedelta(seconds=1)
    await tamper(
        "INSERT INTO audit_entries (seq, occurred_at, action, outcome, http_status, details) "
        "VALUES (:seq, :when, 'notice.push', 'allowed', 201, '{}')",
        seq=10**9,
        when=when if IS_POSTGRES else when.strftime("%Y-%m-%d %H:%M:%S.%f"),
    )
    report = await _clean_report(auditor)
    assert report["ok"] is True and report["unsealed"] == 0, report
