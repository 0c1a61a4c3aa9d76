"""Documents with provenance: who supplied each one, who answers for its accuracy, its hash; corrections."""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import sqlmodel as sm
from sqlmodel import SQLModel

from app.models.base import JSONType, ts_field

# The regulation's sentence: the supplying party answers for the content and accuracy.
ATTESTATION = (
    "Bên cung cấp chịu trách nhiệm về nội dung và tính chính xác của thông tin, tài liệu đã cung cấp "
    "(Quy chế phối hợp 3558-QĐ/TU)."
)


class Document(SQLModel, table=True):
    """One version of a document. Never changed after upload; a correction is a new version."""

    __tablename__ = "documents"

    id: uuid.UUID = sm.Field(default_factory=uuid.uuid4, primary_key=True)
    root_id: uuid.UUID = sm.Field(index=True, description="the first version's id")
    version: int = 1
    supersedes: uuid.UUID | None = sm.Field(default=None, unique=True)
    correction_reason: str | None = sm.Field(default=None, max_length=2000)
    supplier_org: str = sm.Field(foreign_key="organizations.code", max_length=64, index=True)
    supplier_unit: str | None = sm.Field(default=None, max_length=255)
    uploaded_by: uuid.UUID
    attested_by: uuid.UUID
    attester_name: str = sm.Field(max_length=200)
    attester_position: str = sm.Field(max_length=200)
    attestation: str = sm.Field(max_length=1000)
    file_name: str = sm.Field(max_length=255)
    media_type: str = sm.Field(max_length=100)
    size: int = sm.Field(sa_type=sa.BigInteger)
    sha256: str = sm.Field(max_length=64, index=True)
    signature: str | None = None
    signature_kid: str | None = sm.Field(default=None, max_length=128)
    receipt: str
    created_at: datetime = ts_field(default_now=True)


class NoticeDocument(SQLModel, table=True):
    """A document carried by a notice."""

    __tablename__ = "notice_documents"

    notice_id: uuid.UUID = sm.Field(foreign_key="notices.id", primary_key=True)
    document_id: uuid.UUID = sm.Field(foreign_key="documents.id", primary_key=True, index=True)


class SupplierKey(SQLModel, table=True):
    """A committee's public key (ES256 JWK) for signing the documents it supplies."""

    __tablename__ = "supplier_keys"

    # The key id is scoped to its committee: (org_code, kid).
    org_code: str = sm.Field(foreign_key="organizations.code", max_length=64, index=True, primary_key=True)
    kid: str = sm.Field(primary_key=True, max_length=128)
    jwk: dict[str, Any] = sm.Field(sa_type=JSONType)
    created_by: uuid.UUID
    created_at: datetime = ts_field(default_now=True)
    revoked_at: datetime | None = ts_field(nullable=True)


# ---- API schemas ------------------------------------------------------------------------------------------
