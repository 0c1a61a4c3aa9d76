"""Account administration: the operator's admins manage every committee, another committee's admin only its own."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request

from app.http import auditing
from app.http.deps import Admin, SessionDep
from app.http.pagination import CursorParam, LimitParam, after_value, fetch_page
from app.infra.config import settings
from app.schemas.account import AccountCreate, AccountCreated, AccountPublic, AccountsPublic
from app.services import accounts as svc
from app.services.organizations import example_codes

router = APIRouter(prefix="/api/v1/accounts", tags=["Quản trị tài khoản"])

_ERRORS = {401: {"description": "Chưa xác thực"}, 403: {"description": "Không phải quản trị viên của tổ chức"}}

_CREATE_EXAMPLES = {
    "system": {
        "summary": "Tài khoản hệ thống của một tổ chức bên nơi cư trú",
        "value": {"kind": "client", "org_code": example_codes().residence, "roles": ["clerk"]},
    },
    "officer": {
        "summary": "Cán bộ chịu trách nhiệm về tài liệu",
        "value": {
            "kind": "user",
            "org_code": example_codes().workplace,
            "username": "nguyen.thi.lan",
            "roles": ["clerk", "officer"],
            "full_name": "Nguyễn Thị Lan",
            "position": "Phó Trưởng Ban Tổ chức",
        },
    },
}


@router.post(
    "",
    name="account.create",
    response_model=AccountCreated,
    status_code=201,
    summary="Tạo tài khoản (mật khẩu chỉ hiện một lần)",
    responses={**_ERRORS, 409: {"description": "Tên đăng nhập đã có"}},
)
async def create_account(
    request: Request,
    session: SessionDep,
    admin: Admin,
    data: Annotated[AccountCreate, Body(openapi_examples=_CREATE_EXAMPLES)],
) -> AccountCreated:
    account, secret = await svc.create_account(session=session, data=data, actor=admin)
    auditing.note(request, resource_id=str(account.id), counterpart_org=account.org_code)
    return AccountCreated(**AccountPublic.of(account).model_dump(), secret=secret)


def _login(account) -> str:
    return account.login


@router.get(
    "",
    name="account.list",
    response_model=AccountsPublic,
    summary="Danh sách tài khoản quản lý được",
    responses=_ERRORS,
)
async def list_accounts(
    session: SessionDep,
    admin: Admin,
    org_code: Annotated[str | None, Query(max_length=64)] = None,
    cursor: CursorParam = None,
    limit: LimitParam = settings.page_size_default,
) -> AccountsPublic:
    after = after_value(cursor, str)
    page = await fetch_page(
        lambda n: svc.list_accounts(session=session, principal=admin, org_code=org_code, after=after, limit=n), limit
    )
    return AccountsPublic(items=[AccountPublic.of(a) for a in page.items], next_cursor=page.next_cursor(_login))


@router.get(
    "/{account_id}",
    name="account.read",
    response_model=AccountPublic,
    summary="Một tài khoản",
    responses={**_ERRORS, 404: {"description": "Không có hoặc không quản lý được"}},
)
async def get_account(session: SessionDep, admin: Admin, account_id: uuid.UUID) -> AccountPublic:
    return AccountPublic.of(await svc.get_account(session=session, principal=admin, account_id=account_id))


@router.post(
    "/{account_id}/disable",
    name="account.disable",
    response_model=AccountPublic,
    summary="Khóa tài khoản (mã truy cập mất hiệu lực ngay)",
    responses={**_ERRORS, 404: {"description": "Không có hoặc không quản lý được"}},
)
async def disable_account(session: SessionDep, admin: Admin, account_id: uuid.UUID) -> AccountPublic:
    return AccountPublic.of(
        await svc.set_disabled(session=session, principal=admin, account_id=account_id, disabled=True)
    )


@router.post(
    "/{account_id}/enable",
    name="account.enable",
    response_model=AccountPublic,
    summary="Mở khóa tài khoản",
    responses={**_ERRORS, 404: {"description": "Không có hoặc không quản lý được"}},
)
async def enable_account(session: SessionDep, admin: Admin, account_id: uuid.UUID) -> AccountPublic:
    return AccountPublic.of(
        await svc.set_disabled(session=session, principal=admin, account_id=account_id, disabled=False)
    )


@router.post(
    "/{account_id}/rotate-secret",
    name="account.rotate_secret",
    response_model=AccountCreated,
    summary="Cấp mật khẩu / client secret mới (chỉ hiện một lần; mã truy cập cũ mất hiệu lực)",
    responses={**_ERRORS, 404: {"description": "Không có hoặc không quản lý được"}},
)
async def rotate_secret(request: Request, session: SessionDep, admin: Admin, account_id: uuid.UUID) -> AccountCreated:
    account, secret = await svc.rotate_managed_secret(session=session, principal=admin, account_id=account_id)
    auditing.note(request, resource_id=str(account.id), counterpart_org=account.org_code)
    return AccountCreated(**AccountPublic.of(account).model_dump(), secret=secret)
