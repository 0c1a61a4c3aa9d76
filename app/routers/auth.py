"""Token endpoint (OAuth2) and the public keys."""

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel

from app.errors import Unprocessable
from app.http import auditing
from app.http.deps import SessionDep
from app.infra.db import db
from app.infra.net import client_address
from app.infra.security import keystore
from app.models.account import AccountKind
from app.schemas.account import TokenResponse
from app.services import auth

router = APIRouter(tags=["Xác thực"])


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic ") or len(header) > 1024:
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


@router.post(
    "/api/v1/auth/token",
    name="auth.token",
    response_model=TokenResponse,
    summary="Cấp mã truy cập (OAuth2)",
    description="`grant_type=password` cho cán bộ (nút Authorize của Swagger UI); "
    "`grant_type=client_credentials` cho hệ thống của tổ chức (client_id và client_secret trong "
    "form hoặc HTTP Basic). Mã truy cập có hiệu lực tối đa 15 phút.",
    responses={401: {"description": "Sai thông tin đăng nhập"}, 429: {"description": "Đăng nhập sai quá nhiều lần"}},
)
async def issue_token(
    request: Request,
    session: SessionDep,
    grant_type: Annotated[str, Form(max_length=40, examples=["password"])],
    username: Annotated[str | None, Form(max_length=64)] = None,
    password: Annotated[str | None, Form(max_length=256)] = None,
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    client_secret: Annotated[str | None, Form(max_length=256)] = None,
    scope: Annotated[str, Form(max_length=256)] = "",
) -> TokenResponse:
    if grant_type == "password":
        kind, login, secret = AccountKind.user, username, password
    elif grant_type == "client_credentials":
        basic = _basic_credentials(request)
        kind, login, secret = AccountKind.client, *(basic or (client_id, client_secret))
    else:
        raise Unprocessable(
            "grant_type phải là 'password' hoặc 'client_credentials'.",
            code="unsupported_grant_type",
            extra={
                "error": "unsupported_grant_type",
                "error_description": "grant_type phải là 'password' hoặc 'client_credentials'.",
            },
        )
    auditing.note(request, actor_login=login)
    account = await auth.login(session=session, kind=kind, login=login, secret=secret, address=client_address(request))
    auditing.note(request, actor_account=account.id, actor_org=account.org_code)
    token, ttl = auth.token_for(account)
    return TokenResponse(access_token=token, expires_in=ttl)


class JWKS(BaseModel):
    keys: list[dict]


@router.get(
    "/.well-known/jwks.json", name="keys.jwks", response_model=JWKS, summary="Khóa công khai của dịch vụ (JWKS)"
)
async def jwks() -> JWKS:
    await keystore.refresh_if_stale(db.sessions)
    return JWKS(**keystore.jwks())
