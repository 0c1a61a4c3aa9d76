"""Logins: credentials in, access token out; throttling of failures; principals from tokens."""

from datetime import timedelta

from sqlalchemy import and_, bindparam, case, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import settings
from app.db import db
from app.errors import InvalidCredentials, TooManyRequests, Unauthorized
from app.models.account import Account, AccountKind, LoginThrottle
from app.models.base import UTCDateTime, utcnow
from app.models.organization import Organization
from app.principal import Principal
from app.security import TokenClaims, issue_token, verify_secret
from app.statements import Prepared

TOKEN_USE = {AccountKind.user.value: "staff", AccountKind.client.value: "system"}


def throttle_keys(login: str, address: str) -> list[tuple[str, int]]:
    return [
        (f"login:{login.casefold()[:100]}", settings.login_max_failures_per_username),
        (f"addr:{address[:64]}", settings.login_max_failures_per_address),
    ]


async def check_throttle(*, session: AsyncSession, keys: list[tuple[str, int]]) -> None:
    """429 while any of the keys has used up its failures in the current window."""
    now = utcnow()
    window = timedelta(seconds=settings.login_window_seconds)
    rows = (await session.execute(select(LoginThrottle).where(LoginThrottle.key.in_([k for k, _ in keys])))).scalars()
    limits = dict(keys)
    for row in rows:
        if row.failures >= limits[row.key] and row.window_started_at + window > now:
            retry = int((row.window_started_at + window - now).total_seconds()) + 1
            raise TooManyRequests(
                "Đăng nhập sai quá nhiều lần, vui lòng thử lại sau.", retry_after=retry, code="login_throttled"
            )


async def record_failure(*, session: AsyncSession, keys: list[tuple[str, int]]) -> None:
    """Count one failed login against each key (fixed window, one statement per key, race-free)."""
    now = utcnow()
    cutoff = now - timedelta(seconds=settings.login_window_seconds)
    insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
    for key, _limit in keys:
        stmt = insert(LoginThrottle).values(key=key, failures=1, window_started_at=now)
        expired = LoginThrottle.window_started_at < cutoff
        stmt = stmt.on_conflict_do_update(
            index_elements=[LoginThrottle.key],
            set_={
                "failures": case((expired, 1), else_=LoginThrottle.failures + 1),
                "window_started_at": case((expired, literal(now, UTCDateTime)), else_=LoginThrottle.window_started_at),
            },
        )
        await session.execute(stmt)


async def clear_failures(*, session: AsyncSession, login: str) -> None:
    """A successful login forgives that login's failures (not the address's)."""
    row = await session.get(LoginThrottle, f"login:{login.casefold()[:100]}")
    if row is not None:
        await session.delete(row)


async def authenticate(*, session: AsyncSession, kind: AccountKind, login: str, secret: str) -> Account | None:
    """The enabled account these credentials belong to, or None (same cost either way)."""
    account = (await session.execute(select(Account).where(Account.login == login))).scalar_one_or_none()
    valid = verify_secret(account.secret_hash if account else None, secret)
    if not valid or account is None or account.kind != kind.value or account.disabled_at is not None:
        return None
    return account


async def login(
    *, session: AsyncSession, kind: AccountKind, login: str | None, secret: str | None, address: str
) -> Account:
    """Check throttling and credentials; a failure is counted (and committed) before the 401."""
    if not login or not secret:
        raise InvalidCredentials("Thiếu tên đăng nhập hoặc mật khẩu.", oauth_error="invalid_request")
    keys = throttle_keys(login, address)
    await check_throttle(session=session, keys=keys)
    account = await authenticate(session=session, kind=kind, login=login, secret=secret)
    if account is None:
        # The request's session rolls back with the 401, so the failure gets a transaction of its own;
        # end the request's read-only transaction first so SQLite's single writer is free.
        await session.rollback()
        async with db.sessions() as own:
            await record_failure(session=own, keys=keys)
            await own.commit()
        raise InvalidCredentials(oauth_error="invalid_client" if kind == AccountKind.client else "invalid_grant")
    await clear_failures(session=session, login=login)
    return account


def token_for(account: Account) -> tuple[str, int]:
    return issue_token(
        account_id=account.id, org=account.org_code, roles=account.roles, token_use=TOKEN_USE[account.kind]
    )


# Built once: this runs on every authenticated request.
_PRINCIPAL = Prepared(
    select(Account.login, Account.kind, Account.org_code, Account.roles, Organization.kind.label("org_kind"))
    .join(Organization, Organization.code == Account.org_code)
    .where(and_(Account.id == bindparam("account_id"), Account.disabled_at.is_(None)))
)


async def principal_from_claims(*, session: AsyncSession, claims: TokenClaims) -> Principal:
    """The caller behind verified claims: the account must still exist, be enabled and match the token."""
    row = await _PRINCIPAL.fetchrow(session, {"account_id": claims.sub})
    if row is None:
        raise Unauthorized("Tài khoản không tồn tại hoặc đã bị khóa.", code="account_disabled")
    login, kind, org_code, roles, org_kind = row["login"], row["kind"], row["org_code"], row["roles"], row["org_kind"]
    if org_code != claims.org or TOKEN_USE.get(kind) != claims.token_use:
        raise Unauthorized("Mã truy cập không khớp với tài khoản.", code="invalid_token")
    return Principal(
        account_id=claims.sub,
        login=login,
        org_code=org_code,
        org_kind=org_kind,
        roles=frozenset(roles),
        token_use=claims.token_use,
        jti=claims.jti,
    )
