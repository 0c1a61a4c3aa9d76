"""Accounts: system clients and staff users; who may manage whom."""

import secrets
import uuid

from app.errors import Conflict, Forbidden, NotFound, Unprocessable
from app.infra.clock import today
from app.infra.db import Session
from app.infra.security import hash_secret_async, new_secret
from app.models.account import Account, AccountKind, Role
from app.models.base import utcnow
from app.principal import Principal
from app.repositories import accounts as rows
from app.repositories.accounts import LoginTaken
from app.schemas.account import AccountCreate
from app.services import policy
from app.services.organizations import get_organization


async def create_account(*, session: Session, data: AccountCreate, actor: Principal | None) -> tuple[Account, str]:
    """Create a client or user; returns the account and its secret (shown once)."""
    if actor is not None and not policy.may_manage_accounts(actor, data.org_code):
        raise Forbidden("Quản trị viên chỉ được tạo tài khoản cho tổ chức của mình.", code="org_not_managed")
    org = await get_organization(session=session, code=data.org_code)
    if org.side is None or not org.is_active(today()):
        raise Unprocessable(
            "Chỉ tổ chức đang tham gia trao đổi (bên nơi làm việc hoặc bên nơi cư trú, còn hiệu lực) có tài khoản.",
            code="org_not_party",
        )
    if data.kind == AccountKind.client:
        if data.username:
            raise Unprocessable(
                "Tài khoản hệ thống không đặt tên đăng nhập; client_id được tạo tự động.", code="username_not_allowed"
            )
        if Role.officer in data.roles:
            raise Unprocessable("Vai trò officer chỉ dành cho cán bộ, không cho hệ thống.", code="role_not_allowed")
        login = f"{org.code}-{secrets.token_hex(6)}"
    else:
        if not data.username:
            raise Unprocessable("Tài khoản cán bộ cần tên đăng nhập (username).", code="username_required")
        if Role.officer in data.roles and not (data.full_name and data.position):
            raise Unprocessable("Cán bộ chịu trách nhiệm (officer) cần họ tên và chức vụ.", code="officer_identity")
        login = data.username
        # Logins are global; an admin of any committee but the operator names accounts only inside its own
        # committee's prefix, so a clash can never tell it which names another committee uses.
        if actor is not None and not policy.manages_all_accounts(actor) and not login.startswith(f"{org.code}."):
            raise Unprocessable(
                f"Tên đăng nhập của cán bộ phải bắt đầu bằng mã tổ chức: '{org.code}.'.", code="login_prefix_required"
            )
    secret = new_secret()
    account = Account(
        kind=data.kind.value,
        login=login,
        org_code=org.code,
        secret_hash=await hash_secret_async(secret),
        roles=[r.value for r in data.roles],
        full_name=data.full_name,
        position=data.position,
        created_by=actor.account_id if actor else None,
    )
    try:
        await rows.add(session, account)
    except LoginTaken:
        raise Conflict(f"Tên đăng nhập '{login}' đã tồn tại.", code="login_taken") from None
    return account, secret


async def list_accounts(
    *, session: Session, principal: Principal, org_code: str | None, after: str | None, limit: int
) -> list[Account]:
    """Accounts the admin may manage, by login."""
    return await rows.page(
        session,
        all_orgs=policy.manages_all_accounts(principal),
        org=principal.org_code,
        org_code=org_code,
        after=after,
        limit=limit,
    )


async def get_account(*, session: Session, principal: Principal, account_id: uuid.UUID) -> Account:
    """One account the admin may manage, or 404."""
    account = await rows.get_visible(
        session, all_orgs=policy.manages_all_accounts(principal), org=principal.org_code, account_id=account_id
    )
    if account is None:
        raise NotFound("Không tìm thấy tài khoản.", code="account_not_found")
    return account


async def set_disabled(*, session: Session, principal: Principal, account_id: uuid.UUID, disabled: bool) -> Account:
    """Disable or re-enable; a disabled account's live tokens stop working at once."""
    account = await get_account(session=session, principal=principal, account_id=account_id)
    if account.id == principal.account_id and disabled:
        raise Conflict("Không thể tự khóa tài khoản đang dùng.", code="cannot_disable_self")
    now = utcnow()
    if disabled:
        # Re-enabling later must not revive what was issued before: those tokens stay dead.
        account.disabled_at, account.tokens_valid_after = now, now
    else:
        account.disabled_at = None
    account.updated_at = now
    await session.flush()
    return account


async def rotate_secret(*, session: Session, account: Account) -> str:
    """A new password or client secret (shown once); every token issued before it stops working."""
    secret = new_secret()
    account.secret_hash = await hash_secret_async(secret)
    now = utcnow()
    account.tokens_valid_after = now
    account.updated_at = now
    await session.flush()
    return secret


async def rotate_managed_secret(
    *, session: Session, principal: Principal, account_id: uuid.UUID
) -> tuple[Account, str]:
    """An admin rotates the secret of an account it manages."""
    account = await get_account(session=session, principal=principal, account_id=account_id)
    return account, await rotate_secret(session=session, account=account)
