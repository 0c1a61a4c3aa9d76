"""Documents: upload with provenance, read within scope, correct by a new version."""

import base64
import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Header, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BeforeValidator

from app.http import auditing, idempotency
from app.http.deps import SessionDep, Worker
from app.models.document import Document
from app.principal import Principal
from app.schemas.document import (
    Attester,
    DocumentCorrected,
    DocumentCreated,
    DocumentPublic,
    Provenance,
    ProvenanceVersion,
    SignatureCheck,
)
from app.services import documents as svc
from app.text import Name, Text

router = APIRouter(prefix="/api/v1/documents", tags=["Tài liệu"])

_NOT_FOUND = {404: {"description": "Không có, hoặc tổ chức không được xem tài liệu này"}}
_UPLOAD_ERRORS = {
    413: {"description": "Tệp quá lớn"},
    415: {"description": "Loại tệp không được chấp nhận (theo nội dung)"},
    422: {"description": "Tệp rỗng, thiếu cán bộ chịu trách nhiệm, chữ ký sai"},
    507: {"description": "Kho đầy"},
}

FileField = Annotated[UploadFile, File(description="PDF, DOCX, ODT, JPEG, PNG hoặc văn bản thuần; tối đa 20 MB")]
# Optional fields start empty in Swagger UI's form: an empty example, never "string" or a random pattern match
# (which would be sent as a wrong attester or a bad signature). An empty form field means "not given".
BlankIsNone = BeforeValidator(lambda value: None if value == "" else value)
SupplierUnit = Annotated[
    Name | None, BlankIsNone, Form(max_length=255, description="đơn vị cung cấp (nếu có)", examples=[""])
]
AttestedBy = Annotated[
    str | None,
    BlankIsNone,
    Form(
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]*$",
        description="tên đăng nhập của cán bộ (officer) chịu trách nhiệm; bỏ trống nếu chính người tải lên là officer",
        examples=[""],
    ),
]
Signature = Annotated[
    str | None,
    BlankIsNone,
    Form(
        max_length=4096,
        pattern=r"^[A-Za-z0-9_.-]*$",
        description="JWS ES256 tách rời trên SHA-256 (hex) của tệp, ký bằng khóa đã đăng ký của tổ chức",
        examples=[""],
    ),
]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


def public(doc: Document, superseded_by: uuid.UUID | None = None) -> DocumentPublic:
    return DocumentPublic(
        id=doc.id, file_name=doc.file_name, media_type=doc.media_type, size=doc.size, sha256=doc.sha256,
        version=doc.version, root_id=doc.root_id, supersedes=doc.supersedes, superseded_by=superseded_by,
        supplier_org=doc.supplier_org, supplier_unit=doc.supplier_unit, created_at=doc.created_at,
    )  # fmt: skip


def _location(result: DocumentPublic) -> str:
    return f"/api/v1/documents/{result.id}"


def _upload(
    file: UploadFile,
    supplier_unit: str | None,
    attested_by: str | None,
    signature: str | None,
    *,
    reason: str | None = None,
) -> svc.Upload:
    """What the form carries, for the service."""
    return svc.Upload(
        file=file.file,
        file_name=file.filename or "",
        supplier_unit=supplier_unit,
        attested_by=attested_by,
        signature=signature,
        correction_reason=reason,
    )


def _note(request: Request, doc, **details: str) -> None:
    """Name the stored document and its hash in this request's audit entry."""
    auditing.note(request, resource_id=str(doc.id), details={"sha256": doc.sha256, **details})


async def _run(request: Request, session, principal: Principal, key: str | None, file: UploadFile, produce):
    extra = None
    if key is not None:
        # A multipart body has no stable bytes (its boundary changes); match on the file's hash and the fields.
        form = await request.form()
        fields = sorted((k, v) for k, v in form.multi_items() if isinstance(v, str))
        extra = await svc.upload_fingerprint(file.file) + repr(fields).encode()
    return await idempotency.created(
        request=request,
        session=session,
        principal=principal,
        key=key,
        produce=produce,
        location=_location,
        fingerprint_extra=extra,
    )


@router.post(
    "",
    name="document.upload",
    response_model=DocumentCreated,
    status_code=201,
    responses=_UPLOAD_ERRORS,
    summary="Tải lên tài liệu kèm nguồn gốc (bên cung cấp chịu trách nhiệm)",
)
async def upload(
    request: Request,
    session: SessionDep,
    principal: Worker,
    file: FileField,
    supplier_unit: SupplierUnit = None,
    attested_by: AttestedBy = None,
    signature: Signature = None,
    idempotency_key: IdempotencyKey = None,
):
    async def produce() -> DocumentCreated:
        upload = _upload(file, supplier_unit, attested_by, signature)
        doc = await svc.upload(session=session, principal=principal, data=upload)
        _note(request, doc)
        return DocumentCreated(**public(doc).model_dump(), receipt=doc.receipt)

    return await _run(request, session, principal, idempotency_key, file, produce)


@router.get(
    "/{document_id}",
    name="document.read",
    response_model=DocumentPublic,
    responses=_NOT_FOUND,
    summary="Thông tin tài liệu",
)
async def get_document(session: SessionDep, principal: Worker, document_id: uuid.UUID) -> DocumentPublic:
    doc = await svc.get_visible(session=session, principal=principal, document_id=document_id)
    return public(doc, await svc.superseded_by(session=session, document_id=doc.id))


@router.get(
    "/{document_id}/content",
    name="document.content",
    response_class=StreamingResponse,
    responses={
        **_NOT_FOUND,
        200: {"content": {"application/octet-stream": {}}},
        304: {"description": "Không đổi"},
        503: {"description": "Bản lưu không khớp mã băm"},
    },
    summary="Nội dung tài liệu (ETag và Repr-Digest là SHA-256)",
)
async def get_content(
    session: SessionDep,
    principal: Worker,
    document_id: uuid.UUID,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    doc = await svc.get_visible(session=session, principal=principal, document_id=document_id)
    etag = f'"{doc.sha256}"'
    digest = base64.b64encode(bytes.fromhex(doc.sha256)).decode()
    headers = {
        "ETag": etag,
        "Repr-Digest": f"sha-256=:{digest}:",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(doc.file_name)}",
        "Cache-Control": "private, no-store",
    }
    if if_none_match and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    f = await svc.open_verified(doc=doc)

    def chunks():
        with f:
            while chunk := f.read(256 * 1024):
                yield chunk

    return StreamingResponse(chunks(), media_type=doc.media_type, headers={**headers, "Content-Length": str(doc.size)})


@router.get(
    "/{document_id}/provenance",
    name="document.provenance",
    response_model=Provenance,
    responses=_NOT_FOUND,
    summary="Chuỗi trách nhiệm: ai cung cấp, ai chịu trách nhiệm, mã băm, các bản đính chính",
)
async def get_provenance(session: SessionDep, principal: Worker, document_id: uuid.UUID) -> Provenance:
    doc = await svc.get_visible(session=session, principal=principal, document_id=document_id)
    chain = await svc.versions(session=session, principal=principal, doc=doc)
    later = next((v.id for v in chain if v.supersedes == doc.id), None)
    return Provenance(
        document=public(doc, later), supplier_org=doc.supplier_org, supplier_unit=doc.supplier_unit,
        uploaded_by=doc.uploaded_by, attestation=doc.attestation, receipt=doc.receipt,
        attested_by=Attester(account_id=doc.attested_by, full_name=doc.attester_name, position=doc.attester_position),
        signature=SignatureCheck(status="verified" if doc.signature_kid else "absent", kid=doc.signature_kid),
        versions=[ProvenanceVersion(
            id=v.id, version=v.version, sha256=v.sha256, size=v.size, created_at=v.created_at,
            correction_reason=v.correction_reason,
            attested_by=Attester(account_id=v.attested_by, full_name=v.attester_name, position=v.attester_position),
        ) for v in chain],
    )  # fmt: skip


@router.post(
    "/{document_id}/corrections",
    name="document.correct",
    response_model=DocumentCorrected,
    status_code=201,
    responses={
        **_UPLOAD_ERRORS,
        **_NOT_FOUND,
        403: {"description": "Không phải bên cung cấp"},
        409: {"description": "Không phải bản mới nhất"},
    },
    summary="Đính chính: bản mới thay thế, bản cũ vẫn còn; các bên đã nhận được thông báo",
)
async def correct(
    request: Request,
    session: SessionDep,
    principal: Worker,
    document_id: uuid.UUID,
    file: FileField,
    reason: Annotated[Text, Form(max_length=2000, description="lý do đính chính")],
    supplier_unit: SupplierUnit = None,
    attested_by: AttestedBy = None,
    signature: Signature = None,
    idempotency_key: IdempotencyKey = None,
):
    async def produce() -> DocumentCorrected:
        upload = _upload(file, supplier_unit, attested_by, signature, reason=reason)
        doc, sent = await svc.correct(session=session, principal=principal, document_id=document_id, data=upload)
        _note(request, doc, supersedes=str(document_id))
        return DocumentCorrected(
            **public(doc).model_dump(), receipt=doc.receipt, correction_notices=[n.id for n in sent]
        )

    return await _run(request, session, principal, idempotency_key, file, produce)
