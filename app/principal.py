"""Who is calling: the account behind a verified token, as every service sees it."""

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    account_id: uuid.UUID
    login: str
    org_code: str
    org_kind: str
    roles: frozenset[str]
    token_use: str  # "staff" or "system"
    jti: str

    @property
    def is_khoi(self) -> bool:
        return self.org_kind == "khoi"

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))
