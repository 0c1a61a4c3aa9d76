"""Registry editions in the database: what an edition would change (counted per group, never row by row), the
set-based writes that apply it, and the history it leaves (successions, re-assignments, transfers)."""

import uuid
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, and_, exists, func, insert, literal, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.account import Account
from app.models.feedback import FeedbackRound
from app.models.member import Member
from app.models.notice import Notice, NoticeKind
from app.models.organization import Organization
from app.models.registry import MemberReassignment, NoticeTransfer, OrganizationSuccession, RegistryEdition
from app.models.subscription import Delivery, Subscription
from app.repositories.notices import NoticeRow
from app.repositories.webhooks import ACTIVE

_LOCK = 0x4D58_5245_4749_5354  # advisory lock id ("MXREGIST"): one edition applied at a time
# A notice is open until answered when its kind expects an answer, otherwise until acknowledged.
Transferred = NoticeKind.notice_transferred.value


def _member_org(side: str):
    return Member.workplace_org if side == "workplace" else Member.residence_org


def _member_key(side: str):
    """What decides a member's successor when there are several: the ward (folded) or the workplace unit."""
    return Member.workplace_unit_code if side == "workplace" else Member.ward_folded


def _of(side: str, org: str, keys: list[str] | None) -> list[Any]:
    """Members of `org` on `side`, with a mapping key among `keys` (None: all of them)."""
    conditions = [_member_org(side) == org]
    if keys is not None:
        conditions.append(_member_key(side).in_(keys))
    return conditions


def open_condition(answer_kinds: Iterable[str], excluded: Iterable[str]):
    """Still open: unanswered when its kind expects an answer (a transfer: when its original's does), otherwise
    not yet acknowledged; never a kind in `excluded`."""
    answer_kinds = list(answer_kinds)
    transfer_expects = and_(
        Notice.kind == Transferred,
        exists().where(NoticeTransfer.transfer_id == Notice.id, NoticeTransfer.original_kind.in_(answer_kinds)),
    )
    return and_(
        Notice.answered_at.is_(None),
        Notice.kind.not_in(list(excluded)),
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


async def member_groups(session: AsyncSession, *, side: str, org: str, by_key: bool) -> dict[str | None, int]:
    """How many members `org` holds on `side`, per mapping key (or all together: key None)."""
    key = _member_key(side) if by_key else literal(None, String)
    stmt = select(key, func.count()).where(*_of(side, org, None)).group_by(key)
    return {k: n for k, n in (await session.execute(stmt)).all()}


async def open_notice_groups(
    session: AsyncSession, *, side: str, org: str, by_key: bool, answer_kinds: list[str], excluded: list[str]
) -> dict[str | None, int]:
    """Open notices addressed to `org` about members it still holds on `side`, per the members' mapping key."""
    key = _member_key(side) if by_key else literal(None, String)
    stmt = (
        select(key, func.count())
        .select_from(Notice)
        .join(Member, Member.party_card_no == Notice.member_card_no)
        .where(Notice.recipient_org == org, *_of(side, org, None), open_condition(answer_kinds, excluded))
        .group_by(key)
    )
    return {k: n for k, n in (await session.execute(stmt)).all()}


async def open_notices_to(session: AsyncSession, *, org: str, answer_kinds: list[str], excluded: list[str]) -> int:
    """Every open notice addressed to `org`."""
    stmt = select(func.count()).where(Notice.recipient_org == org, open_condition(answer_kinds, excluded))
    return await session.scalar(stmt) or 0


async def sample_members(
    session: AsyncSession, *, side: str, org: str, keys: list[str] | None, limit: int
) -> list[str]:
    """A few card numbers of `org`'s members with one of `keys`."""
    stmt = select(Member.party_card_no).where(*_of(side, org, keys)).order_by(Member.party_card_no).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def unmapped_members(session: AsyncSession, *, side: str, org: str, keys: list[str]) -> list[Any]:
    """Every member of `org` on `side` whose mapping key is none of `keys`: card, name, ward, unit."""
    stmt = (
        select(Member.party_card_no, Member.full_name, Member.residence_ward, Member.workplace_unit_code)
        .where(_member_org(side) == org, _member_key(side).not_in(keys))
        .order_by(Member.party_card_no)
    )
    return list((await session.execute(stmt)).all())


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
    session: AsyncSession,
    *,
    edition_id: str,
    side: str,
    from_org: str,
    to_org: str,
    keys: list[str] | None,
    now: datetime,
) -> int:
    """Move `from_org`'s members with one of `keys` (None: all) to `to_org`, recording each move; two statements
    whatever the number of members. How many moved."""
    conditions = _of(side, from_org, keys)
    recorded = select(
        literal(edition_id, String),
        Member.party_card_no,
        literal(side, String),
        literal(from_org, String),
        literal(to_org, String),
    ).where(*conditions)
    columns = ["edition", "member_card_no", "side", "from_org", "to_org"]
    await session.execute(insert(MemberReassignment.__table__).from_select(columns, recorded))
    moved = await session.execute(
        update(Member.__table__)
        .where(*conditions)
        .values({_member_org(side).key: to_org, "version": Member.version + 1, "updated_at": now})
    )
    return moved.rowcount


async def retire(
    session: AsyncSession, code: str, *, valid_to: date, successor_code: str | None, now: datetime
) -> None:
    await session.execute(
        update(Organization.__table__)
        .where(Organization.code == code)
        .values(valid_to=valid_to, successor_code=successor_code, updated_at=now)
    )


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


async def open_notices_of_reassigned(
    session: AsyncSession,
    *,
    edition_id: str,
    orgs: list[str],
    answer_kinds: list[str],
    excluded: list[str],
    after_seq: int,
    limit: int,
) -> list[tuple[NoticeRow, str]]:
    """Open notices addressed to one of `orgs` whose member this edition re-assigned away from it, with the
    member's successor; in `seq` order after `after_seq`."""
    stmt = (
        select(*Notice.__table__.columns, MemberReassignment.to_org.label("to_org"))
        .join(
            MemberReassignment,
            and_(
                MemberReassignment.member_card_no == Notice.member_card_no,
                MemberReassignment.edition == edition_id,
                MemberReassignment.from_org == Notice.recipient_org,
            ),
        )
        .where(Notice.recipient_org.in_(orgs), open_condition(answer_kinds, excluded), Notice.seq > after_seq)
        .order_by(Notice.seq)
        .limit(limit)
    )
    found = []
    for row in (await session.execute(stmt)).mappings():
        values = dict(row)
        to_org = values.pop("to_org")
        found.append((NoticeRow(**values), to_org))
    return found


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
