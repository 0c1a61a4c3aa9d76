"""Who may do what: the role each kind of call needs, the calls only one side of the exchange may make (by the
committee's side, never by its name) and what the operator (the committee that runs the exchange) may do beyond
that. Every permission decision is taken here; the HTTP dependencies (app.http.deps) and the services ask this
module."""

from app.errors import Forbidden
from app.models.account import Role
from app.principal import Principal

# The roles each group of calls needs (a caller needs one of them).
WORKER = (Role.clerk, Role.officer)  # the exchange itself: members, notices, documents, reports
ADMIN = (Role.admin,)  # accounts and supplier keys of the committee, staff accounts only
AUDITOR = (Role.auditor,)  # the audit log
ORGANISER = (Role.admin, Role.clerk, Role.officer)  # opening a feedback round and reminding
SUBSCRIBER = (Role.clerk, Role.officer, Role.admin)  # webhook subscriptions


def require_roles(principal: Principal, roles: tuple[Role, ...], *, staff_only: bool = False) -> Principal:
    """The caller must hold one of the roles (and be a person, when staff_only); otherwise 403."""
    if staff_only and principal.token_use != "staff":
        raise Forbidden("Chức năng này chỉ dành cho tài khoản cán bộ.", code="staff_only")
    if not principal.has_role(*roles):
        names = ", ".join(r.value for r in roles)
        raise Forbidden(f"Cần vai trò: {names}.", code="role_required")
    return principal


def require_workplace(principal: Principal, detail: str, *, code: str = "khoi_only") -> None:
    """Only a committee on the workplace side may do this (403 with `code`)."""
    if not principal.is_workplace:
        raise Forbidden(detail, code=code)


def require_residence(principal: Principal, detail: str, *, code: str) -> None:
    """Only a committee on the residence side may do this (403 with `code`)."""
    if not principal.is_residence:
        raise Forbidden(detail, code=code)


def require_operator(principal: Principal, detail: str, *, code: str = "khoi_only") -> None:
    """Only the committee that runs the exchange may do this (403 with `code`)."""
    if not principal.operator:
        raise Forbidden(detail, code=code)


def manages_all_accounts(principal: Principal) -> bool:
    """The operator's admins manage every committee's accounts and name logins freely; others only their own."""
    return principal.operator


def may_manage_accounts(principal: Principal, org_code: str) -> bool:
    """The operator's admins manage every committee's accounts; a committee's admin only its own."""
    return principal.has_role(Role.admin) and (manages_all_accounts(principal) or principal.org_code == org_code)


def reads_whole_log(principal: Principal) -> bool:
    """The operator's auditors read (and verify) the whole audit log; others their own committee's entries."""
    return principal.operator
