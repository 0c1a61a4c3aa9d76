"""Registry editions in the database: what an edition would change (counted per group, never row by row), the
set-based writes that apply it, and the history it leaves (successions, re-assignments, transfers)."""

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import String, and_, case, exists, func, insert, literal, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.account import Account
from app.models.feedback import FeedbackRound
from app.models.member import Member
from app.models.notice import Notice, NoticeKind
from app.models.registry import MemberReassignment, NoticeTransfer, OrganizationSuccession, RegistryEdition
from app.models.subscription import Delivery, Subscription
from app.repositories.notices import NoticeRow
from app.repositories.webhooks import ACTIVE

_LOCK = 0x4D58_5245_4749_5354  # advisory lock id ("MXREGIST"): one edition applied at a time
Transferred = NoticeKind.notice_transferred.value


# A move: (a retired committee, the mapping keys that lead to the successor or None for all its members, the
# successor). Every statement below handles all the moves of one side at once: one pass over the members, however
# many committees and successors (members of a committee are spread over the whole table).
Move = tuple[str, list[str] | None, str]


def _member_org(side: str):
    return Member.workplace_org if side == "workplace" else Member.residence_org


def _member_key(side: str):
    """What decides a member's successor when there are several: the ward (folded) or the workplace unit."""
    return Member.workplace_unit_code if side == "workplace" else Member.ward_folded


def _successor(side: str, moves: list[Move]):
    """The member's successor by the moves (NULL: the member stays)."""
    if not moves:
        return literal(None, String)
    whens = []
    for from_org, keys, to_org in moves:
        condition = _member_org(side) == from_org
        if keys is not None:
            condition = and_(condition, _member_key(side).in_(keys))
        whens.append((condition, literal(to_org, String)))
    return case(*whens, else_=literal(None, String))


def _moving(side: str, moves: list[Move]):
    return and_(_member_org(side).in_(sorted({m[0] for m in moves})), _successor(side, moves).is_not(None))


def open_condition(answer_kinds: Iterable[str], excluded: Iterable[str]):
    """Still open: unanswered when its kind expects an answer (a transfer: when its original's does), otherwise
    not yet acknowledged; never a kind in `excluded`."""
    answer_kinds, excluded = list(answer_kinds), list(excluded)
    transfer_expects = and_(
        Notice.kind == Transferred,
        exists().where(NoticeTransfer.transfer_id == Notice.id, NoticeTransfer.original_kind.in_(answer_kinds)),
    )
    return and_(
        Notice.answered_at.is_(None),
        *([Notice.kind.not_in(excluded)] if excluded else []),
        or_(Notice.acknowledged_at.is_(None), Notice.kind.in_(answer_kinds), transfer_expects),
    )


# ---- editions ---------------------------------------------------------------------------------------------------


async def edition(session: AsyncSession, edition_id: str) -> RegistryEdition | None:
    return await session.get(RegistryEdition, edition_id)


async def editions(session: AsyncSession) -> list[RegistryEdition]:
    """Every applied edition, oldest first."""
    stmt = select(RegistryEdition).order_by(RegistryEdition.applied_at, RegistryEdition.id)
    return list((await session.execute(stmt)).scalars())


async def add_edition(session: AsyncSession, row: RegistryEdition) -> None:
    session.add(row)
    await session.flush()


async def lock_for_edition(session: AsyncSession) -> None:
    """Until the transaction ends: one edition at a time, and nothing else writes members, notices or feedback
    rounds meanwhile (a push, a pull's delivery mark or a round's batch waits), so that every open notice addressed
    to a retired committee is seen and passed on. PostgreSQL only: SQLite's single writer is held already."""
    if session.bind.dialect.name != "postgresql":
        return
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    await session.execute(text("LOCK TABLE members, notices, feedback_rounds IN SHARE ROW EXCLUSIVE MODE"))


async def allow_long_statements(session: AsyncSession) -> None:
    """No server-side statement deadline for the rest of this transaction (the operator command)."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SET LOCAL statement_timeout = 0"))


async def running_rounds(session: AsyncSession) -> int:
    """Feedback rounds still creating their requests."""
    return await session.scalar(select(func.count()).where(FeedbackRound.status == "running")) or 0


# ---- what an edition would change ------------------------------------------------------------------------------


async def member_counts(session: AsyncSession, *, side: str, moves: list[Move]) -> dict[tuple[str, str], int]:
    """How many members each move takes, by (retired committee, successor)."""
    if not moves:
        return {}
    moved = (
        select(_member_org(side).label("from_org"), _successor(side, moves).label("to_org"))
        .where(_moving(side, moves))
        .subquery()
    )
    stmt = select(moved.c.from_org, moved.c.to_org, func.count()).group_by(moved.c.from_org, moved.c.to_org)
    return {(f, t): n for f, t, n in (await session.execute(stmt)).all()}


async def member_samples(
    session: AsyncSession, *, side: str, moves: list[Move], limit: int
) -> dict[tuple[str, str], list[str]]:
    """The first few card numbers each move takes."""
    if not moves:
        return {}
    moved = (
        select(
            _member_org(side).label("from_org"),
            _successor(side, moves).label("to_org"),
            Member.party_card_no,
        )
        .where(_moving(side, moves))
        .subquery()
    )
    ranked = select(
        moved,
        func.row_number()
        .over(partition_by=[moved.c.from_org, moved.c.to_org], order_by=moved.c.party_card_no)
        .label("n"),
    ).subquery()
    stmt = (
        select(ranked.c.from_org, ranked.c.to_org, ranked.c.party_card_no)
        .where(ranked.c.n <= limit)
        .order_by(ranked.c.party_card_no)
    )
    out: dict[tuple[str, str], list[str]] = {}
    for f, t, card in (await session.execute(stmt)).all():
        out.setdefault((f, t), []).append(card)
    return out


async def unmapped_members(session: AsyncSession, *, side: str, moves: list[Move], orgs: list[str]) -> list[Any]:
    """Every member of `orgs` on `side` that no move takes: card, name, committee, ward, unit."""
    if not orgs:
        return []
    stmt = (
        select(
            Member.party_card_no,
            Member.full_name,
            _member_org(side),
            Member.residence_ward,
            Member.workplace_unit_code,
        )
        .where(_member_org(side).in_(orgs), _successor(side, moves).is_(None))
        .order_by(Member.party_card_no)
    )
    return list((await session.execute(stmt)).all())


async def open_notices(
    session: AsyncSession, *, orgs: list[str], answer_kinds: list[str], excluded: list[str]
) -> list[tuple[int, str, str]]:
    """(seq, member, recipient) of every open notice addressed to one of `orgs`, in `seq` order: read through the
    recipients' index, whatever the planner knows of the tables."""
    if not orgs:
        return []
    stmt = (
        select(Notice.seq, Notice.member_card_no, Notice.recipient_org)
        .where(Notice.recipient_org.in_(orgs), open_condition(answer_kinds, excluded))
        .order_by(Notice.seq)
    )
    return [tuple(row) for row in (await session.execute(stmt)).all()]


class MemberPlace(NamedTuple):
    """Where a member is on each side now, and what a mapping looks at."""

    residence_org: str
    workplace_org: str
    ward_folded: str
    workplace_unit_code: str


_BY_KEY = 1000  # primary keys per lookup


async def member_places(session: AsyncSession, cards: list[str]) -> dict[str, MemberPlace]:
    """These members' committees and mapping keys, by primary key in batches."""
    out: dict[str, MemberPlace] = {}
    unique = sorted(set(cards))
    for i in range(0, len(unique), _BY_KEY):
        stmt = select(
            Member.party_card_no,
            Member.residence_org,
            Member.workplace_org,
            Member.ward_folded,
            Member.workplace_unit_code,
        ).where(Member.party_card_no.in_(unique[i : i + _BY_KEY]))
        for card, *place in (await session.execute(stmt)).all():
            out[card] = MemberPlace(*place)
    return out


async def accounts_of(session: AsyncSession, orgs: list[str]) -> list[Any]:
    """The accounts of these committees (enabled or not): login, kind, committee."""
    stmt = select(Account.login, Account.kind, Account.org_code).where(Account.org_code.in_(orgs))
    return list((await session.execute(stmt.order_by(Account.org_code, Account.login))).all())


async def active_subscriptions_of(session: AsyncSession, orgs: list[str]) -> list[Any]:
    """The webhook subscriptions of these committees that still receive deliveries: id, committee, url."""
    stmt = (
        select(Subscription.id, Subscription.org_code, Subscription.url)
        .where(Subscription.org_code.in_(orgs), *ACTIVE)
        .order_by(Subscription.org_code, Subscription.created_at)
    )
    return list((await session.execute(stmt)).all())


# ---- applying it ------------------------------------------------------------------------------------------------


async def reassign(
    session: AsyncSession, *, edition_id: str, side: str, moves: list[Move], now: datetime
) -> dict[tuple[str, str], int]:
    """Move the members the moves take to their successors, recording each move: one pass over the members for
    the record, one for the move, whatever the number of members and committees. How many moved, by (retired
    committee, successor)."""
    if not moves:
        return {}
    recorded = select(
        literal(edition_id, String),
        Member.party_card_no,
        literal(side, String),
        _member_org(side),
        _successor(side, moves),
    ).where(_moving(side, moves))
    columns = ["edition", "member_card_no", "side", "from_org", "to_org"]
    await session.execute(insert(MemberReassignment.__table__).from_select(columns, recorded))
    # The same rule, in the same transaction under the edition's locks, moves exactly the members just recorded.
    await session.execute(
        update(Member.__table__)
        .where(_moving(side, moves))
        .values({_member_org(side).key: _successor(side, moves), "version": Member.version + 1, "updated_at": now})
    )
    mine = and_(MemberReassignment.edition == edition_id, MemberReassignment.side == side)
    stmt = (
        select(MemberReassignment.from_org, MemberReassignment.to_org, func.count())
        .where(mine)
        .group_by(MemberReassignment.from_org, MemberReassignment.to_org)
    )
    return {(f, t): n for f, t, n in (await session.execute(stmt)).all()}


async def add_successions(session: AsyncSession, *, edition_id: str, predecessor: str, successors: list[str]) -> None:
    """`predecessor` → each successor, and every earlier predecessor of `predecessor` → each successor too (so a
    successor's successor reads the whole history)."""
    earlier = list(
        (
            await session.execute(
                select(OrganizationSuccession.predecessor).where(OrganizationSuccession.successor == predecessor)
            )
        ).scalars()
    )
    existing = set(
        (
            await session.execute(
                select(OrganizationSuccession.predecessor, OrganizationSuccession.successor).where(
                    OrganizationSuccession.successor.in_(successors)
                )
            )
        ).all()
    )
    rows = []
    for successor in successors:
        for source, direct in ((predecessor, True), *((p, False) for p in earlier)):
            if (source, successor) not in existing and source != successor:
                existing.add((source, successor))
                rows.append({"predecessor": source, "successor": successor, "edition": edition_id, "direct": direct})
    if rows:
        await session.execute(insert(OrganizationSuccession.__table__), rows)


async def notices_by_seq(session: AsyncSession, seqs: list[int]) -> dict[int, NoticeRow]:
    if not seqs:
        return {}
    stmt = select(*Notice.__table__.columns).where(Notice.seq.in_(seqs))
    return {row["seq"]: NoticeRow(**row) for row in (await session.execute(stmt)).mappings()}


async def originals_of(session: AsyncSession, transfer_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """The original notice each of these transfers carries."""
    if not transfer_ids:
        return {}
    stmt = select(NoticeTransfer.transfer_id, NoticeTransfer.original_id).where(
        NoticeTransfer.transfer_id.in_(transfer_ids)
    )
    return {t: o for t, o in (await session.execute(stmt)).all()}


async def notices_by_id(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, NoticeRow]:
    if not ids:
        return {}
    stmt = select(*Notice.__table__.columns).where(Notice.id.in_(ids))
    return {row["id"]: NoticeRow(**row) for row in (await session.execute(stmt)).mappings()}


async def add_transfers(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(NoticeTransfer.__table__), rows)


async def stop_subscriptions(session: AsyncSession, orgs: list[str], *, reason: str) -> int:
    """The committees' subscriptions stop, and what they still had to deliver is cancelled; how many stopped."""
    stopped = await session.execute(
        update(Subscription.__table__)
        .where(Subscription.org_code.in_(orgs), *ACTIVE)
        .values(active=False, disabled_reason=reason)
    )
    theirs = select(Subscription.id).where(Subscription.org_code.in_(orgs))
    await session.execute(
        update(Delivery.__table__)
        .where(Delivery.subscription_id.in_(theirs), Delivery.status == "pending")
        .values(status="cancelled")
    )
    return stopped.rowcount


# ---- the history, for reads and reports --------------------------------------------------------------------------


async def successors_of(session: AsyncSession, codes: Iterable[str] | None = None) -> dict[str, list[str]]:
    """The direct successors of each retired committee (of `codes`, or of all)."""
    stmt = select(OrganizationSuccession.predecessor, OrganizationSuccession.successor).where(
        OrganizationSuccession.direct.is_(True)
    )
    if codes is not None:
        stmt = stmt.where(OrganizationSuccession.predecessor.in_(list(codes)))
    out: dict[str, list[str]] = {}
    for predecessor, successor in (await session.execute(stmt.order_by(OrganizationSuccession.successor))).all():
        out.setdefault(predecessor, []).append(successor)
    return out


async def predecessors_of(session: AsyncSession, org: str) -> list[str]:
    """Every committee `org` succeeded, directly or through a later edition."""
    stmt = select(OrganizationSuccession.predecessor).where(OrganizationSuccession.successor == org)
    return sorted((await session.execute(stmt)).scalars())
