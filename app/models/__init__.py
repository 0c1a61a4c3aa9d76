"""All tables, imported so SQLModel.metadata (used by Alembic) knows them."""

from app.models.account import Account, LoginThrottle, SigningKey
from app.models.audit import AuditChainLink, AuditCheckpoint, AuditEntry, AuditVerification
from app.models.document import Document, NoticeDocument, SupplierKey
from app.models.feedback import FeedbackRound, FeedbackRoundItem
from app.models.idempotency import IdempotencyRecord
from app.models.member import Member
from app.models.notice import Notice
from app.models.organization import Organization
from app.models.registry import MemberReassignment, NoticeTransfer, OrganizationSuccession, RegistryEdition
from app.models.spool import AuditSpoolReplay
from app.models.subscription import Delivery, DeliveryAttempt, Subscription

__all__ = [
    "Account",
    "AuditChainLink",
    "AuditCheckpoint",
    "AuditEntry",
    "AuditSpoolReplay",
    "AuditVerification",
    "Delivery",
    "DeliveryAttempt",
    "Document",
    "FeedbackRound",
    "FeedbackRoundItem",
    "IdempotencyRecord",
    "LoginThrottle",
    "Member",
    "MemberReassignment",
    "Notice",
    "NoticeDocument",
    "NoticeTransfer",
    "Organization",
    "OrganizationSuccession",
    "RegistryEdition",
    "SigningKey",
    "Subscription",
    "SupplierKey",
]
