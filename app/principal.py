"""Who is calling: the account behind a verified token, as every service sees it."""

import uuid
from dataclasses import dataclass
from typing import Protocol

from app.models.organization import OrgSide


class HasCommittees(Protocol):
    workplace_org: str
    residence_org: str


@dataclass(frozen=True)
class Principal:
    account_id: uuid.UUID
    login: str
    org_code: str
    org_side: str | None  # the committee's side of the exchange (OrgSide); None: it takes no part
    operator: bool  # the committee runs the exchange (app.services.policy says what that allows)
    roles: frozenset[str]
    token_use: str  # "staff" or "system"
    jti: str

    @property
    def is_workplace(self) -> bool:
        return self.org_side == OrgSide.workplace

    @property
    def is_residence(self) -> bool:
        return self.org_side == OrgSide.residence

    def other_side_of(self, member: "HasCommittees") -> str:
        """The member's committee on the other side of the exchange from the caller: where the caller's notices about
        the member go, and whose records a read of the member touches."""
        return member.residence_org if self.is_workplace else member.workplace_org

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))
