"""Audit glue for HTTP: each API request leaves exactly one entry.

A request that succeeds gets its entry in its own transaction, just before the commit (db.get_session): if
the entry cannot be written, nothing is committed and the client gets 503. A request that fails is rolled
back, so its entry is written afterwards in a transaction of its own (handlers.install_error_handlers); when
the database is what failed, or that write fails too, the entry goes to the local spool (app.infra.spool), fsynced
before the response, and is written into the log when the database is back. So the failure path never waits for
the database twice. Routers add what only they know (created ids, the member concerned) with `note()`.
"""

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.infra.config import settings
from app.infra.db import db
from app.infra.net import client_address
from app.infra.spool import SpoolError, spool
from app.models.audit import Outcome
from app.models.base import utcnow
from app.services import audit

log = logging.getLogger("app.audit")

# Path parameters that name the resource of a request.
_RESOURCE_PARAMS = (
    "notice_id",
    "document_id",
    "party_card_no",
    "account_id",
    "subscription_id",
    "round_id",
    "kid",
    "code",
)


@dataclass
class AuditNote:
    resource_id: str | None = None
    member_ref: str | None = None
    counterpart_org: str | None = None
    actor_account: uuid.UUID | None = None
    actor_login: str | None = None
    actor_org: str | None = None
    status: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def note(request: Request, **fields: Any) -> AuditNote:
    """Add facts to this request's audit entry."""
    current = request.scope.setdefault("state", {}).setdefault("audit_note", AuditNote())
    for key, value in fields.items():
        if key == "details":
            current.details.update(value)
        else:
            setattr(current, key, value)
    return current


def note_list(request: Request, member_refs: list[str]) -> None:
    """A list read: how many items, and which members' data it returned (by card number only)."""
    note(request, details={"count": len(member_refs), "members": sorted(set(member_refs))})


def _audited_route(request: Request):
    route = request.scope.get("route")
    path = getattr(route, "path", "")
    return route if settings.audit_enabled and path.startswith("/api/v1/") else None


def _fields(request: Request, route, status: int, outcome: Outcome, extra_details: dict | None = None) -> dict:
    state = request.scope.get("state", {})
    n: AuditNote = state.get("audit_note") or AuditNote()
    principal = state.get("principal")
    action = route.name
    resource_id = n.resource_id
    if resource_id is None:
        for param in _RESOURCE_PARAMS:
            if param in request.path_params:
                resource_id = str(request.path_params[param])[:128]
                break
    return {
        "request_id": state.get("request_id"),
        "actor_account": n.actor_account or (principal.account_id if principal else None),
        "actor_login": (n.actor_login or (principal.login if principal else None) or "")[:64] or None,
        "actor_org": n.actor_org or (principal.org_code if principal else None),
        "token_jti": principal.jti if principal else None,
        "action": action,
        "resource_type": action.split(".", 1)[0],
        "resource_id": resource_id,
        "member_ref": n.member_ref,
        "counterpart_org": n.counterpart_org,
        "outcome": outcome.value,
        "http_status": status,
        "client_address": client_address(request)[:64],
        "details": {**n.details, **(extra_details or {})},
    }


async def record_success(session, request: Request, response: Response | None) -> None:
    """Write the entry of a request that is about to commit, in its transaction (with its last statement)."""
    route = _audited_route(request)
    if route is None:
        return
    n: AuditNote | None = request.scope.get("state", {}).get("audit_note")
    status = (
        (n.status if n and n.status else None)
        or (response.status_code if response else None)
        or route.status_code
        or 200
    )
    await audit.append(session=session, deferred=True, **_fields(request, route, status, Outcome.allowed))


async def record_failure(request: Request, status: int, code: str, *, database_down: bool = False) -> None:
    """Write the entry of a refused or failed request, after its own transaction rolled back; to the spool when
    the database is down (`database_down`: it just failed this request, so it is not asked again) or the write
    fails."""
    route = _audited_route(request)
    if route is None:
        return
    outcome = Outcome.denied if status in (401, 403, 404, 429) else Outcome.failed
    fields = {"occurred_at": utcnow(), **_fields(request, route, status, outcome, {"code": code})}
    if not database_down:
        try:
            async with db.sessions() as session:
                await audit.append(session=session, **fields)
                await session.commit()
            return
        except Exception as exc:  # noqa: BLE001 - whatever failed, the entry goes to the spool
            log.warning("could not write the audit entry of a failed request (%s); spooling it", type(exc).__name__)
    try:
        await spool.append(fields)
    except SpoolError:
        log.error("audit entry lost: neither the database nor the spool took it: %s %s", fields["action"], status)
