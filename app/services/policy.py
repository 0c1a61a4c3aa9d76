"""Who may do what: the role each kind of call needs and the calls only one side may make. Every permission
decision is taken here; the HTTP dependencies (app.http.deps) and the services ask this module."""

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


def require_khoi(principal: Principal, detail: str, *, code: str = "khoi_only") -> None:
    """Only the Khối may do this (403 with `code`)."""
    if not principal.is_khoi:
        raise Forbidden(detail, code=code)


def require_district(principal: Principal, detail: str, *, code: str) -> None:
    """Only a district committee may do this (403 with `code`)."""
    if principal.is_khoi:
        raise Forbidden(detail, code=code)


def may_manage_accounts(principal: Principal, org_code: str) -> bool:
    """Khối admins manage every committee's accounts; a district admin only its own."""
    return principal.has_role(Role.admin) and (principal.is_khoi or principal.org_code == org_code)


def require_operator(principal: Principal, detail: str, *, code: str = "operator_only") -> None:
    """Only the committee that runs the exchange may do this (applying registry editions): 403 with `code`."""
    if not principal.is_khoi:  # the operator committee (organizations.operator): the Khối today
        raise Forbidden(detail, code=code)
