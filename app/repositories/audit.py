"""The audit log in the database: the scope rule (which entries an auditor may read) and the append of an entry,
which runs on every request (prepared)."""

from typing import Any

from sqlalchemy import ColumnElement, insert, or_, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.audit import AuditEntry
from app.repositories.prepared import Prepared, defer

# Every recorded field but `seq` (the column's own sequence).
ENTRY_FIELDS = [c.name for c in AuditEntry.__table__.columns if c.name != "seq"]
_INSERT_ENTRY = Prepared(insert(AuditEntry.__table__), column_keys=ENTRY_FIELDS)


def readable(*, khoi: bool, org: str) -> ColumnElement[bool]:
    """The scope rule for audit entries, and the only one: a Khối auditor sees everything; a district auditor its
    own committee's actions and those about it."""
    if khoi:
        return true()
    return or_(AuditEntry.actor_org == org, AuditEntry.counterpart_org == org)


async def insert_entry(session: AsyncSession, fields: dict[str, Any], *, deferred: bool) -> None:
    """Add one entry to the session's transaction; `deferred`: with the request's last statement."""
    if deferred:
        defer(session, _INSERT_ENTRY, fields)
    else:
        await _INSERT_ENTRY.execute(session, fields)
