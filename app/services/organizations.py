"""The committee registry."""

import functools
import json
from datetime import date
from importlib import resources
from typing import NamedTuple

from app.errors import NotFound
from app.infra.clock import today
from app.infra.db import Session
from app.models.base import utcnow
from app.models.organization import Organization, OrgSide
from app.repositories import organizations as rows
from app.repositories import registry as registry_rows
from app.schemas.organization import OrganizationPublic


def registry_data() -> list[dict]:
    """The shipped registry (app/data/organizations.json): every committee with its side of the exchange."""
    text = resources.files("app.data").joinpath("organizations.json").read_text(encoding="utf-8")
    return json.loads(text)["organizations"]


class ExampleCodes(NamedTuple):
    """Committee codes for the API's examples (Swagger UI's "Try it out")."""

    workplace: str
    residence: str
    other_residence: str


@functools.cache
def example_codes() -> ExampleCodes:
    """Codes for the API's examples, taken from the shipped registry so that no code names a committee: its first
    workplace-side committee and its first two residence-side ones still in office."""
    current = [o for o in registry_data() if not o.get("valid_to")]
    workplace = [o["code"] for o in current if o.get("side") == OrgSide.workplace]
    residence = [o["code"] for o in current if o.get("side") == OrgSide.residence]
    residence += ["ma-noi-cu-tru", "ma-noi-cu-tru-khac"]  # placeholders for a registry without enough of them
    return ExampleCodes((workplace or ["ma-noi-lam-viec"])[0], residence[0], residence[1])


async def load_registry(*, session: Session, entries: list[dict] | None = None) -> int:
    """Insert or update the registry entries; never deletes (retire with valid_to instead). Once a registry edition
    has been applied, editions govern the registry: only committees missing from the database are inserted, and
    no committee is updated (`init`, which every start of the service runs, must never undo an edition)."""
    entries = registry_data() if entries is None else entries
    for entry in entries:  # every entry checked before any is stored: a bad file changes nothing
        side, operator = entry.get("side"), entry.get("operator", False)
        if (side is not None and side not in set(OrgSide)) or not isinstance(operator, bool):
            raise ValueError(f"registry entry {entry.get('code')!r}: side {side!r}, operator {operator!r}")
    existing = await rows.by_code(session)
    governed_by_editions = bool(await registry_rows.editions(session))
    fields = ("kind", "side", "operator", "name", "short_name", "unit", "area", "parent_code", "successor_code")
    for entry in entries:
        org = existing.get(entry["code"])
        if org is None:
            org = Organization(code=entry["code"], kind=entry["kind"], name=entry["name"])
            rows.add(session, org)
        elif governed_by_editions:
            continue
        for f in fields:
            if f in entry:
                setattr(org, f, entry[f])
        for f in ("valid_from", "valid_to"):
            if entry.get(f):
                setattr(org, f, date.fromisoformat(entry[f]))
        org.updated_at = utcnow()
    await session.flush()
    return len(entries)


def to_public(org: Organization, successors: list[str] = ()) -> OrganizationPublic:
    return OrganizationPublic(
        **org.model_dump(exclude={"created_at", "updated_at"}),
        active=org.is_active(today()),
        successors=list(successors),
    )


async def present(*, session: Session, orgs: list[Organization]) -> list[OrganizationPublic]:
    """Committees as the API shows them, a retired one with its successors."""
    retired = [o.code for o in orgs if o.valid_to is not None]
    successors = await registry_rows.successors_of(session, retired) if retired else {}
    return [to_public(o, successors.get(o.code, [])) for o in orgs]


async def list_organizations(
    *, session: Session, kind: str | None, side: str | None, active_only: bool
) -> list[Organization]:
    """The registry: the workplace side first, then by code."""
    orgs = await rows.listed(session, kind=kind, side=side)
    return [o for o in orgs if o.is_active(today())] if active_only else orgs


async def get_organization(*, session: Session, code: str) -> Organization:
    """One committee, or 404."""
    org = await rows.get(session, code)
    if org is None:
        raise NotFound(f"Không có tổ chức đảng mã '{code[:64]}'.", code="organization_not_found")
    return org
