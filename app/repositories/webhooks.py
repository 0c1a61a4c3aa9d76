"""Webhook subscriptions in the database: the scope rule (a committee sees its own subscriptions), which
subscriptions want a new notice (prepared: it runs with every notice) and the deliveries that announce it."""

import uuid
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, bindparam, delete, exists, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.subscription import Delivery, DeliveryAttempt, Subscription
from app.repositories.prepared import Prepared, later

# A subscription that receives deliveries.
ACTIVE = (Subscription.active.is_(True), Subscription.deleted_at.is_(None))


class Wanted(NamedTuple):
    """An active subscription: its id and the kinds it wants (none: every kind)."""

    id: uuid.UUID
    kinds: list[str] | None


_WANTED = Prepared(
    select(Subscription.id, Subscription.kinds).where(Subscription.org_code == bindparam("org"), *ACTIVE)
)


async def wanted_by(session: AsyncSession, org: str) -> list[Wanted]:
    """The committee's active subscriptions."""
    return [Wanted(r["id"], r["kinds"]) for r in await _WANTED.fetch(session, {"org": org})]


def add_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Queue deliveries in the session's transaction (written with its next flush)."""
    session.add_all([Delivery(**row) for row in rows])


_INSERT_DELIVERY = Prepared(insert(Delivery.__table__), column_keys=[c.name for c in Delivery.__table__.columns])


async def add_deliveries_later(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Deliveries announcing a notice written with the request's last statement (prepared: with every push)."""
    for row in rows:
        await later(session, _INSERT_DELIVERY, row)


def readable(org: str) -> ColumnElement[bool]:
    """The scope rule for subscriptions, and the only one: a committee sees its own, until it deletes them."""
    return and_(Subscription.org_code == org, Subscription.deleted_at.is_(None))


async def add(session: AsyncSession, sub: Subscription) -> None:
    session.add(sub)
    await session.flush()


async def get_own(session: AsyncSession, *, org: str, subscription_id: uuid.UUID) -> Subscription | None:
    stmt = select(Subscription).where(Subscription.id == subscription_id, readable(org))
    return (await session.execute(stmt)).scalar_one_or_none()


async def own(session: AsyncSession, org: str) -> list[Subscription]:
    stmt = select(Subscription).where(readable(org)).order_by(Subscription.created_at)
    return list((await session.execute(stmt)).scalars())


async def cancel_pending(session: AsyncSession, subscription_id: uuid.UUID) -> None:
    """What was still to be delivered is cancelled; the history stays."""
    await session.execute(
        update(Delivery)
        .where(Delivery.subscription_id == subscription_id, Delivery.status == "pending")
        .values(status="cancelled")
    )


async def active_by_org(session: AsyncSession, org_codes: set[str] | None = None) -> dict[str, list[Subscription]]:
    """Active subscriptions, by committee."""
    stmt = select(Subscription).where(*ACTIVE)
    if org_codes is not None:
        stmt = stmt.where(Subscription.org_code.in_(org_codes))
    out: dict[str, list[Subscription]] = {}
    for sub in (await session.execute(stmt)).scalars():
        out.setdefault(sub.org_code, []).append(sub)
    return out


async def deliveries_of(
    session: AsyncSession, *, subscription_id: uuid.UUID, after: datetime | None, limit: int
) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
    """A subscription's deliveries, newest first, each with every attempt."""
    stmt = (
        select(Delivery)
        .where(Delivery.subscription_id == subscription_id)
        .order_by(Delivery.created_at.desc(), Delivery.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(Delivery.created_at < after)
    rows = list((await session.execute(stmt)).scalars())
    attempts: dict[uuid.UUID, list[DeliveryAttempt]] = {}
    if rows:
        found = await session.execute(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_([d.id for d in rows]))
            .order_by(DeliveryAttempt.attempt)
        )
        for a in found.scalars():
            attempts.setdefault(a.delivery_id, []).append(a)
    return [(d, attempts.get(d.id, [])) for d in rows]


async def delivery(session: AsyncSession, delivery_id: uuid.UUID) -> Delivery | None:
    return await session.get(Delivery, delivery_id)


async def due(session: AsyncSession, *, now: datetime, batch: int) -> list[Delivery]:
    """Pending deliveries whose time has come, locked (others skip them)."""
    stmt = (
        select(Delivery)
        .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(stmt)).scalars())


async def subscriptions(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Subscription]:
    found = await session.execute(select(Subscription).where(Subscription.id.in_(ids)))
    return {s.id: s for s in found.scalars()}


def add_attempt(session: AsyncSession, attempt: DeliveryAttempt) -> None:
    session.add(attempt)


async def disable(session: AsyncSession, subscription_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        update(Subscription).where(Subscription.id == subscription_id).values(active=False, disabled_reason=reason)
    )


async def purge_finished(
    session: AsyncSession, *, statuses: tuple[str, ...], cutoff: datetime, batch: int
) -> tuple[int, int]:
    """Delete up to `batch` deliveries in one of `statuses` with no activity since `cutoff`, with their attempts;
    how many attempts and deliveries."""
    # A delivery's last activity: the worker moves next_attempt_at past each attempt (its lease), a success sets
    # delivered_at. Locked, so a redelivery asked for meanwhile waits and then finds nothing removed.
    finished = list(
        (
            await session.execute(
                select(Delivery.id)
                .where(
                    Delivery.status.in_(statuses),
                    Delivery.next_attempt_at < cutoff,
                    or_(Delivery.delivered_at.is_(None), Delivery.delivered_at < cutoff),
                    ~exists().where(DeliveryAttempt.delivery_id == Delivery.id, DeliveryAttempt.at >= cutoff),
                )
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    if not finished:
        return 0, 0
    attempts = await session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(finished)))
    deliveries = await session.execute(delete(Delivery).where(Delivery.id.in_(finished)))
    return attempts.rowcount, deliveries.rowcount
