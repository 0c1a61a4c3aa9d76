"""Webhook subscriptions in the database: which subscriptions want a new notice (prepared: it runs with every
notice) and the deliveries that announce it."""

import uuid
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.subscription import Delivery, Subscription
from app.repositories.prepared import Prepared

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
