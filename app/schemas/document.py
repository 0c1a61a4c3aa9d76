"""Schemas of documents: what the API takes and returns (the tables are in app.models.document)."""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class DocumentRef(BaseModel):
    id: uuid.UUID
    file_name: str
    media_type: str
    size: int
    sha256: str


class DocumentPublic(DocumentRef):
    version: int
    root_id: uuid.UUID
    supersedes: uuid.UUID | None
    superseded_by: uuid.UUID | None = None
    supplier_org: str
    supplier_unit: str | None
    created_at: datetime


class DocumentCreated(DocumentPublic):
    receipt: str = Field(description="JWS signed by the service: who supplied what, which hash, when")


class DocumentCorrected(DocumentCreated):
    correction_notices: list[uuid.UUID] = Field(
        description="the notice.corrected sent to each committee that received the previous version"
    )


class Attester(BaseModel):
    account_id: uuid.UUID
    full_name: str
    position: str


class SignatureCheck(BaseModel):
    status: str = Field(
        description="'verified': a detached JWS by the supplier's key was checked at upload; 'absent': none was given"
    )
    kid: str | None = None


class ProvenanceVersion(BaseModel):
    id: uuid.UUID
    version: int
    sha256: str
    size: int
    created_at: datetime
    attested_by: Attester
    correction_reason: str | None


class Provenance(BaseModel):
    document: DocumentPublic
    supplier_org: str
    supplier_unit: str | None
    uploaded_by: uuid.UUID
    attested_by: Attester
    attestation: str
    signature: SignatureCheck
    receipt: str
    versions: list[ProvenanceVersion] = Field(description="every version of this document, oldest first")


class SupplierKeyCreate(BaseModel):
    model_config = {"extra": "forbid"}

    jwk: dict[str, Any] = Field(description="public key, JWK: kty EC, crv P-256, x, y; kid optional")


class SupplierKeyPublic(BaseModel):
    kid: str
    org_code: str
    jwk: dict[str, Any]
    created_at: datetime
    revoked_at: datetime | None


class SupplierKeysPublic(BaseModel):
    items: list[SupplierKeyPublic]
