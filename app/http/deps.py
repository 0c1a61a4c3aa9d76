"""Dependencies every router shares: the session, the caller, and the guards on who may call what."""

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import ServiceUnavailable, Unauthorized
from app.http import auditing, idempotency
from app.infra.db import db, unreachable
from app.infra.security import TokenError, keystore, verify_token
from app.models.account import Role
from app.principal import Principal
from app.repositories import prepared
from app.services import policy
from app.services.auth import principal_from_claims

log = logging.getLogger("app.auth")


async def get_session(request: Request, response: Response) -> AsyncIterator[AsyncSession]:
    """The request session, the one commit point: services only flush; the request's audit entry is added
    and everything is committed here, before the response is sent."""
    async with db.sessions() as session:
        prepared.closes_with_last_writes(session)
        try:
            yield session
            try:
                await auditing.record_success(session, request, response)
                await prepared.flush_deferred(session)
            except Exception as exc:
                if (conflict := idempotency.in_progress(exc)) is not None:
                    raise conflict from None
                if unreachable(exc):  # the database itself: 503 database_unavailable, as for any statement
                    raise
                raise ServiceUnavailable(
                    "Không ghi được nhật ký kiểm tra; thao tác chưa được thực hiện.", code="audit_unavailable"
                ) from exc
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token",
    auto_error=False,
    description="Cán bộ: đăng nhập bằng tên và mật khẩu. Hệ thống: grant_type=client_credentials.",
)


async def get_principal(
    request: Request, session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """The verified caller; every failure is a 401 with WWW-Authenticate."""
    if not token:
        raise Unauthorized("Cần mã truy cập (Bearer token).", code="missing_token")
    await keystore.refresh_if_stale(db.sessions)
    try:
        claims = verify_token(token)
    except TokenError as first:
        # A key rotated by another process may not be loaded here yet: refresh once (rate-limited), retry.
        if "unknown kid" not in str(first):
            log.info("token refused: %s", first)
            raise Unauthorized("Mã truy cập không hợp lệ hoặc đã hết hạn.", code="invalid_token") from None
        await keystore.refresh_if_stale(db.sessions, force=True)
        try:
            claims = verify_token(token)
        except TokenError as exc:
            log.info("token refused: %s", exc)
            raise Unauthorized("Mã truy cập không hợp lệ hoặc đã hết hạn.", code="invalid_token") from None
    principal = await principal_from_claims(session=session, claims=claims)
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def _guard(roles: tuple[Role, ...], *, staff_only: bool = False):
    """A dependency asking the policy (app.services.policy) whether the caller may make this kind of call."""

    async def guard(principal: CurrentPrincipal) -> Principal:
        return policy.require_roles(principal, roles, staff_only=staff_only)

    return guard


Worker = Annotated[Principal, Depends(_guard(policy.WORKER))]
Admin = Annotated[Principal, Depends(_guard(policy.ADMIN, staff_only=True))]
Auditor = Annotated[Principal, Depends(_guard(policy.AUDITOR))]
Organiser = Annotated[Principal, Depends(_guard(policy.ORGANISER))]
Subscriber = Annotated[Principal, Depends(_guard(policy.SUBSCRIBER))]
