"""A long log is verified in worker processes, range by range (`member-exchange verify-audit`): every kind of
tampering is still found and reported exactly as the page-by-page verification reports it, in any range, at a
range's first or last position and across two ranges."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.infra.db import db
from app.models.audit import AuditEntry
from app.models.base import utcnow
from app.services.audit import seal, verification_workers, verify
from tests.audit_tools import rewrite_chain, tamper
from tests.conftest import IS_POSTGRES
from tests.exchange import add_member, push, violation

AUDIT = "/api/v1/audit"
RANGE = 3  # positions per range: a busy log of a dozen entries is four ranges over two processes


@pytest.fixture(scope="module")
def workers():
    with verification_workers(2) as pool:
        yield pool


def _outcome(report) -> tuple:
    return report.ok, report.size, report.head_hash, report.unsealed, report.first_problem


async def _both(workers, **kwargs):
    """The verification in worker processes, checked against the page-by-page one (pages as long as ranges)."""
    by_pages = await verify(sessions=db.sessions, page=RANGE, **kwargs)
    by_ranges = await verify(sessions=db.sessions, workers=workers, parallel_from=1, chunk=RANGE, **kwargs)
    assert _outcome(by_ranges) == _outcome(by_pages)
    return by_ranges


async def _busy_log(party, notices: int = 11) -> None:
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    for _ in range(notices):
        await push(khoi, violation(card))
    await _seal()


async def _seal() -> None:
    async with db.sessions() as session:
        await seal(session=session)
        await session.commit()


async def _seq_at(position: int) -> int:
    from sqlalchemy import text

    async with db.sessions() as s:
        return (
            await s.execute(text("SELECT entry_seq FROM audit_chain WHERE position = :p"), {"p": position})
        ).scalar()


async def test_a_clean_log_verifies_in_worker_processes_to_the_same_size_and_head(party, workers):
    await _busy_log(party)
    report = await _both(workers)
    assert report.ok and report.size >= 4 * RANGE and report.first_problem is None


@pytest.mark.parametrize("position", [3, 5, 6, 10], ids=["first-of-a-range", "last-of-a-range", "third-range", "late"])
async def test_a_changed_entry_is_located_in_whichever_range_holds_it(party, workers, position):
    await _busy_log(party)
    seq = await _seq_at(position)
    await tamper("UPDATE audit_entries SET http_status = 299 WHERE seq = :s", s=seq)
    report = await _both(workers)
    assert (report.first_problem.problem, report.first_problem.position) == ("entry_altered", position)
    assert report.first_problem.entry_seq == seq


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM audit_entries WHERE seq = :s",  # the entry gone, its link kept
        "DELETE FROM audit_chain WHERE position = :p",  # the link gone: the next range starts from it
        "UPDATE audit_chain SET chain_hash = :x WHERE position = :p",  # the link the next range starts from
        "UPDATE audit_chain SET entry_hash = :x WHERE position = :p",
    ],
    ids=["entry-deleted", "link-deleted", "link-altered", "entry-hash-altered"],
)
@pytest.mark.parametrize("position", [2, 5], ids=["end-of-first-range", "end-of-second-range"])
async def test_tampering_at_the_edge_of_a_range_is_reported_as_page_by_page(party, workers, statement, position):
    await _busy_log(party)
    await tamper(statement, s=await _seq_at(position), p=position, x="f" * 64)
    report = await _both(workers)
    assert report.ok is False and report.first_problem.position == position, report


async def test_the_last_link_deleted_is_found_by_the_last_range(party, workers):
    await _busy_log(party)
    async with db.sessions() as s:
        from sqlalchemy import text

        last = (await s.execute(text("SELECT max(position) FROM audit_chain"))).scalar()
    await tamper("DELETE FROM audit_chain WHERE position = :p", p=last - 1)
    report = await _both(workers)
    assert (report.first_problem.problem, report.first_problem.position) == ("entry_missing", last - 1)


async def test_a_pair_swapped_across_two_ranges_is_detected(party, workers):
    await _busy_log(party)
    a, b = await _seq_at(5), await _seq_at(6)
    await tamper("UPDATE audit_chain SET entry_seq = -1 WHERE position = 5")
    await tamper("UPDATE audit_chain SET entry_seq = :a WHERE position = 6", a=a)
    await tamper("UPDATE audit_chain SET entry_seq = :b WHERE position = 5", b=b)
    report = await _both(workers)
    assert report.ok is False and report.first_problem.position == 5


async def test_an_entry_written_in_afterwards_is_reported_after_the_ranges(party, workers):
    await _busy_log(party)
    when = datetime(2026, 1, 1, tzinfo=UTC) if IS_POSTGRES else "2026-01-01 00:00:00"
    await tamper(
        "INSERT INTO audit_entries (seq, occurred_at, action, outcome, http_status, details) "
        "VALUES (-77, :when, 'notice.push', 'allowed', 201, '{}')",
        when=when,
    )
    report = await _both(workers)
    assert (report.first_problem.problem, report.first_problem.entry_seq) == ("entry_inserted", -77)


async def test_a_rewritten_history_contradicts_a_kept_checkpoint_in_a_later_range(party, workers):
    await _busy_log(party)
    auditor = await party("khoi_auditor")
    kept = (await auditor.post(f"{AUDIT}/checkpoints")).json()
    await _seal()
    await tamper("UPDATE audit_entries SET http_status = 299 WHERE seq = :s", s=await _seq_at(1))
    await rewrite_chain()
    report = await _both(workers, presented=[kept["jws"]])
    assert report.first_problem.problem == "history_rewritten"
    assert report.first_problem.position == kept["size"] - 1 and kept["size"] - 1 >= 2 * RANGE


async def test_a_resumed_verification_recomputes_what_came_after_in_worker_processes(party, workers):
    await _busy_log(party)
    auditor = await party("khoi_auditor")
    await auditor.post(f"{AUDIT}/checkpoints")
    assert (await auditor.get(f"{AUDIT}/verify")).json()["ok"]
    await _busy_log(party)
    report = await _both(workers, resume=True)
    assert report.ok and report.resumed_from
    seq = await _seq_at(report.size - 2)
    await tamper("UPDATE audit_entries SET http_status = 299 WHERE seq = :s", s=seq)
    report = await _both(workers, resume=True)
    assert (report.first_problem.problem, report.first_problem.entry_seq) == ("entry_altered", seq)


async def test_entries_with_every_kind_of_value_read_back_by_the_workers_as_the_sealer_hashed_them(workers):
    """The workers read the entries straight from the driver: what they hash must be what the sealer hashed from
    the service's own reads, for every type an entry holds, text and nested details included."""
    texts = ["Nguyễn Văn An", 'a"b\\c', "\x01\x1f\u2028\u2029", "tab\there\nnew", "😀", "</script>", "\x7f"]
    details = [
        {},
        {"ghi_chú": "dữ liệu nền", "limit": 50},
        {"b": [1, None, "x", True, False], "a": {"z": "Đ", "y": 2.5, "x": 1e-07, "w": 1e16}, "n": None},
        {"big": 10**18, "neg": -3, "float": 0.1, "list": [[], {}, [{"k": "\u2028"}]]},
        ["a", 1, None],
        "just text",
        None,
    ]
    base = utcnow() - timedelta(days=2)
    rows = [
        {
            "occurred_at": base + timedelta(microseconds=i * 1_000_001 + (0 if i % 3 else 7)),
            "request_id": texts[i % len(texts)],
            "actor_account": uuid.uuid4() if i % 2 else None,
            "actor_login": texts[(i + 1) % len(texts)] if i % 4 else None,
            "actor_org": "ba-dinh",
            "token_jti": None,
            "action": "notice.read",
            "resource_type": "notice",
            "resource_id": str(uuid.uuid4()),
            "member_ref": f"{i:012d}"[-12:],
            "counterpart_org": None,
            "outcome": "allowed",
            "http_status": 200 + i,
            "client_address": "::1",
            "details": details[i % len(details)],
        }
        for i in range(4 * len(details))
    ]
    async with db.sessions() as session:
        await session.execute(AuditEntry.__table__.insert(), rows)
        await session.commit()
    await _seal()
    report = await _both(workers)
    assert report.ok and report.size >= len(rows), report
