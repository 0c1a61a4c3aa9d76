"""Committees' public keys for signing the documents they supply (ES256 JWK)."""

from typing import Annotated

from fastapi import APIRouter, Body, Path

from app.http.deps import Admin, SessionDep, Worker
from app.schemas.document import SupplierKeyCreate, SupplierKeyPublic, SupplierKeysPublic
from app.services import documents as svc

router = APIRouter(prefix="/api/v1/supplier-keys", tags=["Khóa ký tài liệu"])

_EXAMPLE = {
    "key": {
        "summary": "Khóa công khai EC P-256 của Quận ủy",
        "value": {
            "jwk": {
                "kty": "EC",
                "crv": "P-256",
                "kid": "khoa-ky-2026",
                "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
            }
        },
    }
}


@router.post(
    "",
    name="supplier_key.register",
    response_model=SupplierKeyPublic,
    status_code=201,
    summary="Đăng ký khóa công khai của tổ chức (quản trị viên)",
    responses={409: {"description": "kid đã tồn tại"}, 422: {"description": "Không phải khóa EC P-256"}},
)
async def register(
    session: SessionDep, admin: Admin, data: Annotated[SupplierKeyCreate, Body(openapi_examples=_EXAMPLE)]
) -> SupplierKeyPublic:
    key = await svc.register_key(session=session, principal=admin, key=data.jwk)
    return SupplierKeyPublic.model_validate(key, from_attributes=True)


@router.get("", name="supplier_key.list", response_model=SupplierKeysPublic, summary="Các khóa của tổ chức")
async def list_keys(session: SessionDep, principal: Worker) -> SupplierKeysPublic:
    keys = await svc.list_keys(session=session, principal=principal)
    return SupplierKeysPublic(items=[SupplierKeyPublic.model_validate(k, from_attributes=True) for k in keys])


@router.delete(
    "/{kid}",
    name="supplier_key.revoke",
    response_model=SupplierKeyPublic,
    summary="Thu hồi khóa (chữ ký cũ vẫn đã được ghi nhận khi tải lên)",
    responses={404: {"description": "Không có khóa này trong tổ chức"}},
)
async def revoke(session: SessionDep, admin: Admin, kid: Annotated[str, Path(max_length=128)]) -> SupplierKeyPublic:
    key = await svc.revoke_key(session=session, principal=admin, kid=kid)
    return SupplierKeyPublic.model_validate(key, from_attributes=True)
