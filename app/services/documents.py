"""Documents: upload with provenance, read within scope, correct by a new version, verify integrity."""

import asyncio
import base64
import hashlib
import json
import logging
import re
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any, BinaryIO

import filetype
from jose import jwk as jose_jwk
from jose import jws
from pathvalidate import sanitize_filename

from app.errors import (
    AppError,
    Conflict,
    Forbidden,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from app.infra.config import settings
from app.infra.db import Session
from app.infra.security import RECEIPT_TYP, sign_jws
from app.infra.storage import FileBlobStore, StorageFull, TooLarge
from app.models.account import Account, Role
from app.models.base import utcnow
from app.models.document import ATTESTATION, Document, SupplierKey
from app.models.notice import Notice
from app.principal import Principal
from app.repositories import documents as rows
from app.repositories.documents import NotLatest
from app.services import notices

log = logging.getLogger("app.documents")

ALLOWED_TYPES = {
    "application/pdf": "PDF",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "DOCX",
    "application/vnd.oasis.opendocument.text": "ODT",
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "text/plain": "văn bản thuần",
}
# The file name's extension must agree with the type found in the content (plain text only as .txt).
EXTENSIONS = {
    "application/pdf": {"pdf"},
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": {"docx"},
    "application/vnd.oasis.opendocument.text": {"odt"},
    "image/jpeg": {"jpg", "jpeg"},
    "image/png": {"png"},
    "text/plain": {"txt"},
}
# Names that a recipient's computer would run or render, wherever they appear in the name ("x.hta.txt").
FORBIDDEN_EXTENSIONS = frozenset(
    "hta htm html xhtml xht shtml mht mhtml svg svgz xml xsl xslt js jse mjs vbs vbe wsf wsh wsc sct bat cmd com "
    "exe dll scr pif cpl msi msp msc lnk url reg inf ps1 psm1 psd1 ps1xml sh bash zsh csh py pyw pl rb php jar "
    "class jnlp appref-ms application gadget hlp chm swf iso img vhd vhdx docm dotm xlsm pptm".split()
)
# Content that a browser or a shell would treat as markup or a script, whatever the upload says it is.
_ACTIVE_MARKERS = re.compile(
    rb"<\s*(?:!doctype|html|head|body|script|svg|iframe|frame|object|embed|meta|link|style|img|form|base|"
    rb"hta:application|job|package|xml|\?xml|\?php|%)|javascript:|vbscript:|\bcreateobject\s*\(|\bwscript\.",
    re.IGNORECASE,
)
_SCRIPT_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:#!|@echo\b|<#|param\s*\()", re.IGNORECASE)
HEAD_BYTES = 8192

store = FileBlobStore(settings.blob_dir)


class IntegrityFailure(AppError):
    status_code = 503
    code = "content_integrity_failed"
    title = "Service Unavailable"
    detail = "Bản lưu của tài liệu không khớp mã băm đã ghi nhận; đã báo cho quản trị viên."


@dataclass(frozen=True)
class Upload:
    """What a client sends with a document."""

    file: BinaryIO
    file_name: str
    supplier_unit: str | None = None
    attested_by: str | None = None
    signature: str | None = None
    correction_reason: str | None = None


def sniff(head: bytes) -> str | None:
    """The media type by content (never by name), if it is one we accept."""
    kind = filetype.guess(head)
    if kind is not None:
        return kind.mime if kind.mime in ALLOWED_TYPES else None
    if b"\x00" in head:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # a multi-byte character cut at the end of the sample is fine
            return None
    return "text/plain"


def looks_active(head: bytes) -> bool:
    """Plain text that is really HTML, SVG, XML or a script (checked on the first 8 KB)."""
    return bool(_ACTIVE_MARKERS.search(head) or _SCRIPT_START.match(head))


def check_name_and_type(file_name: str, media_type: str, head: bytes) -> None:
    """Refuse executable, script and markup files, and a name whose extension disagrees with the content."""
    parts = file_name.casefold().split(".")
    if any(p.strip() in FORBIDDEN_EXTENSIONS for p in parts[1:]) or (media_type == "text/plain" and looks_active(head)):
        raise UnsupportedMediaType(
            "Không nhận tệp có thể chạy hoặc hiển thị như trang web (script, HTML, SVG, tệp thực thi).",
            code="active_content_refused",
        )
    extension = parts[-1] if len(parts) > 1 else ""
    if extension not in EXTENSIONS[media_type]:
        expected = ", ".join(f".{e}" for e in sorted(EXTENSIONS[media_type]))
        raise UnsupportedMediaType(
            f"Phần mở rộng của tên tệp không khớp với nội dung ({ALLOWED_TYPES[media_type]}: {expected}).",
            code="extension_mismatch",
        )


def clean_file_name(name: str) -> str:
    """No paths, no control or reserved characters, NFC, at most 200 characters."""
    base = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    cleaned = sanitize_filename(base, replacement_text="_").strip(" .")
    cleaned = "".join(c for c in cleaned if unicodedata.category(c)[0] != "C")
    if len(cleaned) > 200:
        stem, dot, ext = cleaned.rpartition(".")
        cleaned = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else cleaned[:200]
    return cleaned or "tai-lieu"


def _hash_file(f: BinaryIO, max_size: int) -> tuple[str, int, bytes]:
    f.seek(0)
    digest, size, head = hashlib.sha256(), 0, b""
    while chunk := f.read(1024 * 1024):
        size += len(chunk)
        if size > max_size:
            raise TooLarge
        if len(head) < HEAD_BYTES:
            head += chunk[: HEAD_BYTES - len(head)]
        digest.update(chunk)
    f.seek(0)
    return digest.hexdigest(), size, head


async def upload_fingerprint(f: BinaryIO) -> bytes:
    """What identifies an upload for Idempotency-Key: the SHA-256 of its bytes."""
    sha256, _size, _head = await asyncio.to_thread(_hash_file, f, settings.max_document_bytes * 2)
    return sha256.encode()


async def _attester(*, session: Session, principal: Principal, login: str | None) -> Account:
    """The officer who answers for the document: the named one, or the uploading officer."""
    if login is None:
        if principal.token_use == "staff" and principal.has_role(Role.officer):
            return await rows.account(session, principal.account_id)
        raise Unprocessable(
            "Cần nêu cán bộ chịu trách nhiệm về tính chính xác của tài liệu (attested_by).", code="attester_required"
        )
    account = await rows.account_by_login(session, login)
    if (
        account is None
        or account.org_code != principal.org_code
        or account.kind != "user"
        or Role.officer.value not in account.roles
        or account.disabled_at is not None
    ):
        raise Unprocessable(
            "attested_by phải là cán bộ có vai trò officer, đang hoạt động, của chính tổ chức gửi.",
            code="attester_not_officer",
        )
    return account


async def _check_signature(*, session: Session, principal: Principal, token: str, sha256: str) -> str:
    """A detached JWS over the document's SHA-256 (hex), by a key of the supplying committee; returns the kid."""
    try:
        header = jws.get_unverified_header(token)
    except Exception:  # noqa: BLE001 - any malformed signature is the client's error
        raise Unprocessable("Chữ ký (signature) không phải JWS hợp lệ.", code="signature_invalid") from None
    kid = header.get("kid")
    if header.get("alg") != "ES256" or not isinstance(kid, str) or len(kid) > 128:
        raise Unprocessable("Chữ ký phải là JWS ES256 có 'kid'.", code="signature_invalid")
    # Only the supplying committee's own keys: a kid is that committee's name for its key.
    key = await rows.supplier_key(session, org=principal.org_code, kid=kid)
    if key is None or key.revoked_at is not None:
        raise Unprocessable(
            "Tổ chức cung cấp không có khóa công khai đang hiệu lực với 'kid' này.", code="signature_key_unknown"
        )
    parts = token.split(".")
    if len(parts) != 3:
        raise Unprocessable("Chữ ký phải là JWS dạng compact.", code="signature_invalid")
    payload = base64.urlsafe_b64encode(sha256.encode()).rstrip(b"=").decode()
    attached = f"{parts[0]}.{payload}.{parts[2]}"
    if parts[1] not in ("", payload):
        raise Unprocessable("Chữ ký được tạo trên nội dung khác.", code="signature_mismatch")
    try:
        jws.verify(attached, jose_jwk.construct(key.jwk, "ES256"), algorithms=["ES256"])
    except Exception:  # noqa: BLE001 - a failed check is the client's error
        raise Unprocessable("Chữ ký không khớp với nội dung tài liệu.", code="signature_mismatch") from None
    return kid


def _receipt(doc: Document, principal: Principal) -> str:
    payload = {
        "receipt_for": "document",
        "id": str(doc.id),
        "supplier_org": doc.supplier_org,
        "supplied_by": principal.login,
        "attested_by": doc.attester_name,
        "sha256": doc.sha256,
        "size": doc.size,
        "media_type": doc.media_type,
        "received_at": doc.created_at.isoformat(),
    }
    return sign_jws(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(), typ=RECEIPT_TYP)


async def _store(*, session: Session, principal: Principal, upload: Upload, previous: Document | None) -> Document:
    attester = await _attester(session=session, principal=principal, login=upload.attested_by)
    try:
        sha256, size, head = await asyncio.to_thread(_hash_file, upload.file, settings.max_document_bytes)
    except TooLarge:
        raise PayloadTooLarge(
            f"Tài liệu vượt quá {settings.max_document_bytes} byte.", code="document_too_large"
        ) from None
    if size == 0:
        raise Unprocessable("Tài liệu rỗng.", code="empty_document")
    media_type = sniff(head)
    if media_type is None:
        allowed = ", ".join(ALLOWED_TYPES.values())
        raise UnsupportedMediaType(
            f"Loại tệp không được chấp nhận (kiểm tra theo nội dung). Được phép: {allowed}.",
            code="unsupported_document_type",
        )
    file_name = clean_file_name(upload.file_name)
    check_name_and_type(file_name, media_type, head)
    kid = None
    if upload.signature:
        kid = await _check_signature(session=session, principal=principal, token=upload.signature, sha256=sha256)
    try:
        stored = await asyncio.to_thread(store.put, upload.file, max_size=settings.max_document_bytes)
    except StorageFull:
        log.error("document storage is full")
        raise InsufficientStorage("Kho lưu trữ tài liệu đã đầy; tài liệu chưa được lưu.") from None
    if stored.sha256 != sha256:  # the upload changed between the two passes: refuse rather than guess
        raise Conflict("Nội dung tải lên thay đổi trong khi xử lý.", code="upload_changed")
    doc_id = uuid.uuid4()
    doc = Document(
        id=doc_id,
        root_id=previous.root_id if previous else doc_id,
        version=previous.version + 1 if previous else 1,
        supersedes=previous.id if previous else None,
        correction_reason=upload.correction_reason,
        supplier_org=principal.org_code,
        supplier_unit=upload.supplier_unit,
        uploaded_by=principal.account_id,
        attested_by=attester.id,
        attester_name=attester.full_name or attester.login,
        attester_position=attester.position or "",
        attestation=ATTESTATION,
        file_name=file_name,
        media_type=media_type,
        size=size,
        sha256=sha256,
        signature=upload.signature,
        signature_kid=kid,
        receipt="",
        created_at=utcnow(),
    )
    doc.receipt = _receipt(doc, principal)
    try:
        await rows.add(session, doc)
    except NotLatest:  # a concurrent correction of the same version got there first
        raise Conflict(
            "Tài liệu này vừa có bản đính chính khác; hãy đính chính bản mới nhất.", code="not_latest"
        ) from None
    return doc


async def upload(*, session: Session, principal: Principal, data: Upload) -> Document:
    """Store a new document with its provenance, fixed at upload."""
    return await _store(session=session, principal=principal, upload=data, previous=None)


async def get_visible(*, session: Session, principal: Principal, document_id: uuid.UUID) -> Document:
    """A document the caller supplied or received with a notice, or 404."""
    doc = await rows.get_visible(session, org=principal.org_code, document_id=document_id)
    if doc is None:
        raise NotFound("Không tìm thấy tài liệu.", code="document_not_found")
    return doc


async def superseded_by(*, session: Session, document_id: uuid.UUID) -> uuid.UUID | None:
    return await rows.superseded_by(session, document_id)


async def versions(*, session: Session, principal: Principal, doc: Document) -> list[Document]:
    """The versions of a document the caller may see, oldest first."""
    return await rows.versions(session, org=principal.org_code, root_id=doc.root_id)


async def open_verified(*, doc: Document) -> BinaryIO:
    """The stored bytes, after checking they still hash to what was recorded."""
    actual = await asyncio.to_thread(store.digest, doc.sha256)
    if actual != doc.sha256:
        log.critical("document %s: stored bytes do not match the recorded SHA-256 (found %s)", doc.id, actual)
        raise IntegrityFailure()
    return await asyncio.to_thread(store.open, doc.sha256)


async def correct(
    *, session: Session, principal: Principal, document_id: uuid.UUID, data: Upload
) -> tuple[Document, list[Notice]]:
    """A corrected version by the supplier; everyone who received the old one gets a notice.corrected."""
    old = await get_visible(session=session, principal=principal, document_id=document_id)
    if old.supplier_org != principal.org_code:
        raise Forbidden("Chỉ bên cung cấp mới được đính chính tài liệu.", code="not_supplier")
    if await superseded_by(session=session, document_id=old.id) is not None:
        raise Conflict("Tài liệu này đã có bản đính chính; hãy đính chính bản mới nhất.", code="not_latest")
    new = await _store(session=session, principal=principal, upload=data, previous=old)
    sent = await notices.announce_document_correction(
        session=session, principal=principal, old=old, new=new, reason=data.correction_reason or ""
    )
    return new, sent


# ---- supplier keys ----------------------------------------------------------------------------------------


async def register_key(*, session: Session, principal: Principal, key: dict[str, Any]) -> SupplierKey:
    """Register a committee's ES256 public key for signing documents (its own admin only)."""
    if key.get("kty") != "EC" or key.get("crv") != "P-256" or "d" in key or not key.get("x") or not key.get("y"):
        raise Unprocessable("Khóa phải là JWK công khai EC P-256 (ES256), không chứa khóa bí mật.", code="invalid_key")
    public = {k: key[k] for k in ("kty", "crv", "x", "y")}
    try:
        jose_jwk.construct({**public, "alg": "ES256"}, "ES256").to_pem()
    except Exception:  # noqa: BLE001 - not a point on the curve, bad encoding: the client's error
        raise Unprocessable("Khóa công khai không hợp lệ.", code="invalid_key") from None
    thumb = hashlib.sha256(json.dumps(public, sort_keys=True, separators=(",", ":")).encode()).digest()
    kid = key.get("kid") or base64.urlsafe_b64encode(thumb).rstrip(b"=").decode()
    if not isinstance(kid, str) or not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", kid):
        raise Unprocessable("kid không hợp lệ.", code="invalid_key")
    if await rows.supplier_key(session, org=principal.org_code, kid=kid) is not None:
        raise Conflict("Tổ chức đã có khóa với kid này.", code="key_exists")
    row = SupplierKey(
        kid=kid,
        org_code=principal.org_code,
        jwk={**public, "kid": kid, "alg": "ES256"},
        created_by=principal.account_id,
    )
    await rows.add_key(session, row)
    return row


async def list_keys(*, session: Session, principal: Principal) -> list[SupplierKey]:
    return await rows.keys_of(session, principal.org_code)


async def revoke_key(*, session: Session, principal: Principal, kid: str) -> SupplierKey:
    key = await rows.supplier_key(session, org=principal.org_code, kid=kid)
    if key is None:
        raise NotFound("Không tìm thấy khóa.", code="key_not_found")
    key.revoked_at = key.revoked_at or utcnow()
    await session.flush()
    return key
