"""documents: provenance, supplier keys, documents carried by notices, signed notices

Revision ID: 0004_documents
Revises: 0003_audit
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_documents"
down_revision: str | None = "0003_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("root_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("supersedes", sa.Uuid(), nullable=True),
        sa.Column("correction_reason", sa.String(2000), nullable=True),
        sa.Column("supplier_org", sa.String(64), nullable=False),
        sa.Column("supplier_unit", sa.String(255), nullable=True),
        sa.Column("uploaded_by", sa.Uuid(), nullable=False),
        sa.Column("attested_by", sa.Uuid(), nullable=False),
        sa.Column("attester_name", sa.String(200), nullable=False),
        sa.Column("attester_position", sa.String(200), nullable=False),
        sa.Column("attestation", sa.String(1000), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(), nullable=True),
        sa.Column("signature_kid", sa.String(128), nullable=True),
        sa.Column("receipt", sa.String(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_documents"),
        sa.UniqueConstraint("supersedes", name="uq_documents_supersedes"),
        sa.ForeignKeyConstraint(["supplier_org"], ["organizations.code"],
                                name="fk_documents_supplier_org_organizations"),
    )
    op.create_index("ix_documents_root_id", "documents", ["root_id"])
    op.create_index("ix_documents_supplier_org", "documents", ["supplier_org"])
    op.create_index("ix_documents_sha256", "documents", ["sha256"])

    op.create_table(
        "notice_documents",
        sa.Column("notice_id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("notice_id", "document_id", name="pk_notice_documents"),
        sa.ForeignKeyConstraint(["notice_id"], ["notices.id"], name="fk_notice_documents_notice_id_notices"),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], name="fk_notice_documents_document_id_documents"),
    )
    op.create_index("ix_notice_documents_document_id", "notice_documents", ["document_id"])

    op.create_table(
        "supplier_keys",
        sa.Column("kid", sa.String(128), nullable=False),
        sa.Column("org_code", sa.String(64), nullable=False),
        sa.Column("jwk", JSON, nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_supplier_keys"),
        sa.ForeignKeyConstraint(["org_code"], ["organizations.code"], name="fk_supplier_keys_org_code_organizations"),
    )
    op.create_index("ix_supplier_keys_org_code", "supplier_keys", ["org_code"])

    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("signature", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("signature")
    op.drop_table("supplier_keys")
    op.drop_table("notice_documents")
    op.drop_table("documents")
