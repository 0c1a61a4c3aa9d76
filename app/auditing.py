"""Audit glue for HTTP: each API request leaves exactly one entry.

A request that succeeds gets its entry in its own transaction, just before the commit (db.get_session): if
the entry cannot be written, nothing is committed and the client gets 503. A request that fails is rolled
back, so its entry is written afterwards in a transaction of its own (errors.install_error_handlers).
Routers add what only they know (created ids, the member concerned) with `note()`.
"""

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.config import settings
from app.db import db
from app.models.audit import Outcome
from app.net import client_address
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


async def record_failure(request: Request, status: int, code: str) -> None:
    """Write the entry of a refused or failed request, after its own transaction rolled back."""
    route = _audited_route(request)
    if route is None:
        return
    outcome = Outcome.denied if status in (401, 403, 404, 429) else Outcome.failed
    try:
        async with db.sessions() as session:
            await audit.append(session=session, **_fields(request, route, status, outcome, {"code": code}))
            await session.commit()
    except Exception:
        log.exception("could not write the audit entry of a failed request")
