"""Logins: credentials in, access token out; throttling of failures; principals from tokens."""

from datetime import UTC, date, datetime, timedelta

from app.errors import InvalidCredentials, TooManyRequests, Unauthorized
from app.infra.clock import today
from app.infra.config import settings
from app.infra.db import Session, db
from app.infra.security import TokenClaims, issue_token, verify_secret_async
from app.models.account import Account, AccountKind
from app.models.base import utcnow
from app.principal import Principal
from app.repositories import accounts, logins
from app.services import account_cache

TOKEN_USE = {AccountKind.user.value: "staff", AccountKind.client.value: "system"}


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _name(login: str) -> str:
    return login.casefold()[:100]


def throttle_keys(login: str, address: str) -> list[tuple[str, int]]:
    """What a failed attempt counts against: this login from this address, and this address for any login."""
    return [
        (f"pair:{_name(login)}|{address[:64]}", settings.login_max_failures_per_username),
        (f"addr:{address[:64]}", settings.login_max_failures_per_address),
    ]


def _login_key(login: str) -> tuple[str, int]:
    """Failures of this login from addresses it has never used successfully (checked only for such addresses)."""
    return f"login:{_name(login)}", settings.login_max_failures_per_login


def _usual_key(login: str, address: str) -> str:
    return f"usual:{_name(login)}|{address[:64]}"


async def _count(session: Session, key: str, now: datetime) -> tuple[int, datetime]:
    """Count one more against `key` in its current window; the new count and the window's start."""
    return await logins.count(session, key, now, window=timedelta(seconds=settings.login_window_seconds))


def _throttled(retry_after: int, detail: str = "Đăng nhập sai quá nhiều lần, vui lòng thử lại sau.") -> TooManyRequests:
    return TooManyRequests(detail, retry_after=max(1, retry_after), code="login_throttled")


async def reserve_attempt(*, login: str, address: str) -> list[str]:
    """Count this attempt as a failure before the secret is checked, in a transaction of its own, so that
    concurrent attempts can never evaluate more than the limit; 429 when a limit is used up. Returns the keys
    counted (a success gives them back)."""
    now = utcnow()
    window = timedelta(seconds=settings.login_window_seconds)
    async with db.sessions() as own:
        usual = await logins.window_started(own, _usual_key(login, address))
        usual_since = now - timedelta(days=settings.login_usual_address_days)
        is_usual = usual is not None and usual > usual_since
        keys = throttle_keys(login, address) + ([] if is_usual else [_login_key(login)])
        retry = 0
        for key, limit in keys:
            count, started = await _count(own, key, now)
            if count > limit:
                retry = max(retry, int((started + window - now).total_seconds()) + 1)
        await own.commit()
    if retry:
        raise _throttled(retry)
    return [k for k, _ in keys]


async def _forgive(*, own: Session, login: str, address: str, keys: list[str]) -> None:
    """A success gives back its own reservation (failures stay counted for their window: forgiving them would
    let guesses that run alongside a success be evaluated beyond the limit), and the address becomes one this
    login usually comes from."""
    await logins.give_back(own, keys)
    await logins.touch(own, _usual_key(login, address), utcnow())


async def authenticate(*, session: Session, kind: AccountKind, login: str, secret: str) -> Account | None:
    """The enabled account these credentials belong to, or None (same cost either way, off the event loop)."""
    account = await accounts.by_login_detached(session, login)
    # No transaction is held while Argon2 runs (on SQLite it would hold the write lock); what follows uses
    # transactions of its own.
    await session.rollback()
    valid = await verify_secret_async(account.secret_hash if account else None, secret)
    if not valid or account is None or account.kind != kind.value or account.disabled_at is not None:
        return None
    return account


async def login(*, session: Session, kind: AccountKind, login: str | None, secret: str | None, address: str) -> Account:
    """Reserve the attempt, check the credentials, give the reservation back on success; at most
    `login_max_tokens_per_account` tokens per account per window."""
    if not login or not secret:
        raise InvalidCredentials("Thiếu tên đăng nhập hoặc mật khẩu.", oauth_error="invalid_request")
    keys = await reserve_attempt(login=login, address=address)
    account = await authenticate(session=session, kind=kind, login=login, secret=secret)
    if account is None:
        raise InvalidCredentials(oauth_error="invalid_client" if kind == AccountKind.client else "invalid_grant")
    async with db.sessions() as own:
        await _forgive(own=own, login=login, address=address, keys=keys)
        issued, started = await _count(own, f"tokens:{account.id}", utcnow())
        retired_on = await accounts.committee_valid_to(own, account.org_code)
        await own.commit()
    if retired_on is not None:
        _require_active_committee(account.org_code, retired_on)
    if issued > settings.login_max_tokens_per_account:
        window_end = started + timedelta(seconds=settings.login_window_seconds)
        raise TooManyRequests(
            "Tài khoản đã nhận quá nhiều mã truy cập trong thời gian ngắn; hãy dùng lại mã còn hiệu lực.",
            retry_after=max(1, int((window_end - utcnow()).total_seconds()) + 1),
            code="token_rate_limited",
        )
    return account


def _require_active_committee(org_code: str, valid_to: date) -> None:
    """A committee a registry edition retired: its accounts stop working on `valid_to` (401)."""
    if valid_to <= today():
        raise Unauthorized(
            f"Tổ chức '{org_code}' đã giải thể từ ngày {valid_to.isoformat()} (sắp xếp lại tổ chức); tài khoản của "
            "tổ chức không còn dùng được. Hãy dùng tài khoản của tổ chức kế tục.",
            code="organization_retired",
        )


def token_for(account: Account) -> tuple[str, int]:
    return issue_token(
        account_id=account.id,
        org=account.org_code,
        roles=account.roles,
        token_use=TOKEN_USE[account.kind],
        valid_after=account.tokens_valid_after,
    )


async def principal_from_claims(*, session: Session, claims: TokenClaims) -> Principal:
    """The caller behind verified claims: the account must still exist, be enabled and match the token. The row may
    come from the account cache (app/services/account_cache.py: invalidated by the database at each change); every
    check below is made on each request either way, against the clock for the token's age and the committee's end."""
    row = await account_cache.caller(session, claims.sub)
    if row is None:
        raise Unauthorized("Tài khoản không tồn tại hoặc đã bị khóa.", code="account_disabled")
    login, kind, org_code, roles = row.login, row.kind, row.org_code, row.roles
    if org_code != claims.org or TOKEN_USE.get(kind) != claims.token_use:
        raise Unauthorized("Mã truy cập không khớp với tài khoản.", code="invalid_token")
    valid_after = row.tokens_valid_after
    if valid_after is not None and claims.iat < _aware(valid_after).timestamp():
        raise Unauthorized(
            "Mã truy cập được cấp trước khi tài khoản bị khóa hoặc đổi mật khẩu; hãy lấy mã mới.", code="token_revoked"
        )
    if row.org_valid_to is not None:
        _require_active_committee(org_code, row.org_valid_to)
    return Principal(
        account_id=claims.sub,
        login=login,
        org_code=org_code,
        org_side=row.org_side,
        operator=row.operator,
        roles=frozenset(roles),
        token_use=claims.token_use,
        jti=claims.jti,
    )
