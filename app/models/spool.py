"""Audit entries replayed from the local spool (app.infra.spool): one row per spooled entry, none written twice."""

from datetime import datetime

import sqlmodel as sm
from sqlmodel import SQLModel

from app.models.base import ts_field


class AuditSpoolReplay(SQLModel, table=True):
    """Inserted in the transaction that writes the spooled entry into the audit log (never updated)."""

    __tablename__ = "audit_spool_replays"

    spool_id: str = sm.Field(primary_key=True, max_length=32)
    replayed_at: datetime = ts_field(default_now=True)
