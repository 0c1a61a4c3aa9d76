"""Schemas of notices: what the API takes and returns (the tables are in app.models.notice)."""

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from app.models.member import CARD_NO_PATTERN
from app.models.notice import NoticeKind, NoticeStatus
from app.schemas.document import DocumentRef
from app.text import Code, Name, Text


class _Payload(BaseModel):
    model_config = {"extra": "forbid"}


class IntroducedFields(_Payload):
    letter_no: Name = Field(max_length=50, description="số giấy giới thiệu sinh hoạt nơi cư trú")
    issued_on: date
    ward: Name = Field(max_length=120)
    address: Name = Field(max_length=255)
    residential_group: Name | None = Field(default=None, max_length=120)
    note: Text | None = Field(default=None, max_length=2000)


class AcceptedFields(_Payload):
    ward: Name = Field(max_length=120)
    cell: Name = Field(max_length=200, description="chi bộ nơi cư trú đảng viên sinh hoạt")
    accepted_on: date
    note: Text | None = Field(default=None, max_length=2000)


class NotAcceptedFields(_Payload):
    reason: Text = Field(max_length=2000)
    note: Text | None = Field(default=None, max_length=2000)


class ResidenceChangedFields(_Payload):
    from_org: Code
    to_org: Code
    new_ward: Name | None = Field(default=None, max_length=120)
    new_address: Name | None = Field(default=None, max_length=255)
    moved_on: date
    note: Text | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _different(self) -> "ResidenceChangedFields":
        if self.from_org == self.to_org:
            raise ValueError("to_org: nơi cư trú mới phải khác nơi cũ")
        return self


class FeedbackRequestedFields(_Payload):
    year: int = Field(ge=2000, le=2100)
    due_date: date
    note: Text | None = Field(default=None, max_length=2000)


class FeedbackGivenFields(_Payload):
    year: int = Field(ge=2000, le=2100)
    cell: Name = Field(max_length=200)
    comments: Text = Field(max_length=5000, description="nhận xét của chi bộ nơi cư trú")
    reviewed_on: date


class FeedbackReminderFields(_Payload):
    """Sent by the service itself for an overdue comment request; answered by answering that request."""

    year: int = Field(ge=2000, le=2100)
    due_date: date
    request_id: uuid.UUID
    overdue_days: int = Field(ge=1)


class ViolationReportedFields(_Payload):
    summary: Text = Field(max_length=500)
    observed_on: date
    details: Text | None = Field(default=None, max_length=5000)
    severity: Literal["low", "medium", "high"] = "medium"


class DisciplineDecidedFields(_Payload):
    form: Literal["reprimand", "warning", "removal_from_post", "expulsion"]
    decision_no: Name = Field(max_length=50)
    decided_on: date
    authority: Name = Field(max_length=255, description="cấp ra quyết định kỷ luật")
    effective_from: date | None = None
    reason: Text | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _dates(self) -> "DisciplineDecidedFields":
        if self.effective_from and self.effective_from < self.decided_on:
            raise ValueError("effective_from: ngày hiệu lực không được trước ngày quyết định")
        return self


class InfoRequestedFields(_Payload):
    question: Text = Field(max_length=5000)
    due_date: date | None = None


class InfoProvidedFields(_Payload):
    answer: Text = Field(max_length=5000)


class CorrectedFields(_Payload):
    reason: Text = Field(max_length=2000, description="lý do đính chính")
    corrected: dict[str, Any] = Field(description="nội dung đã đính chính, theo đúng cấu trúc của thông báo gốc")


class TransferredOriginal(BaseModel):
    """A copy of the notice a transfer carries (the original itself is never changed)."""

    id: uuid.UUID
    kind: NoticeKind
    sender_org: str
    recipient_org: str
    created_at: datetime
    payload: dict[str, Any]
    due_date: date | None = None
    documents: list[dict[str, str]] = Field(default_factory=list, description="id and sha256 of each document")


class TransferredFields(_Payload):
    """Sent by the service when a registry edition retires the recipient of an open notice: the member's successor
    committee gets it, in the original's thread; answering it answers the original (to its sender)."""

    edition: str
    effective: date
    from_org: str = Field(description="the retired committee the original was addressed to")
    to_org: str = Field(description="the successor that now holds the member")
    original: TransferredOriginal


FIELDS_BY_KIND: dict[NoticeKind, type[_Payload]] = {
    NoticeKind.member_introduced: IntroducedFields,
    NoticeKind.member_accepted: AcceptedFields,
    NoticeKind.member_not_accepted: NotAcceptedFields,
    NoticeKind.member_residence_changed: ResidenceChangedFields,
    NoticeKind.feedback_requested: FeedbackRequestedFields,
    NoticeKind.feedback_given: FeedbackGivenFields,
    NoticeKind.feedback_reminder: FeedbackReminderFields,
    NoticeKind.violation_reported: ViolationReportedFields,
    NoticeKind.discipline_decided: DisciplineDecidedFields,
    NoticeKind.info_requested: InfoRequestedFields,
    NoticeKind.info_provided: InfoProvidedFields,
    NoticeKind.notice_corrected: CorrectedFields,
}


_DOCUMENT_IDS = Field(
    default_factory=list, max_length=20, description="documents to carry (uploaded by this committee)"
)


class _NoticeIn(BaseModel):
    model_config = {"extra": "forbid"}

    document_ids: list[uuid.UUID] = _DOCUMENT_IDS

    member_card_no: str = Field(pattern=CARD_NO_PATTERN, description="số thẻ đảng viên")
    recipient_org: Code | None = Field(
        default=None,
        description="optional: derived by the service (the member's committee on the other side); if given it must "
        "match",
    )


class MemberIntroducedNotice(_NoticeIn):
    kind: Literal["member.introduced"]
    payload: IntroducedFields


class MemberResidenceChangedNotice(_NoticeIn):
    kind: Literal["member.residence_changed"]
    payload: ResidenceChangedFields


class FeedbackRequestedNotice(_NoticeIn):
    kind: Literal["feedback.requested"]
    payload: FeedbackRequestedFields


class ViolationReportedNotice(_NoticeIn):
    kind: Literal["violation.reported"]
    payload: ViolationReportedFields


class DisciplineDecidedNotice(_NoticeIn):
    kind: Literal["discipline.decided"]
    payload: DisciplineDecidedFields


class InfoRequestedNotice(_NoticeIn):
    kind: Literal["info.requested"]
    payload: InfoRequestedFields


class NoticeCorrectedNotice(_NoticeIn):
    kind: Literal["notice.corrected"]
    supersedes: uuid.UUID = Field(description="id of the earlier notice of the same sender being corrected")
    payload: CorrectedFields


NoticeCreate = Annotated[
    MemberIntroducedNotice
    | MemberResidenceChangedNotice
    | FeedbackRequestedNotice
    | ViolationReportedNotice
    | DisciplineDecidedNotice
    | InfoRequestedNotice
    | NoticeCorrectedNotice,
    Field(discriminator="kind"),
]


class _ReplyIn(BaseModel):
    model_config = {"extra": "forbid"}

    document_ids: list[uuid.UUID] = _DOCUMENT_IDS


class MemberAcceptedReply(_ReplyIn):
    kind: Literal["member.accepted"]
    payload: AcceptedFields


class MemberNotAcceptedReply(_ReplyIn):
    kind: Literal["member.not_accepted"]
    payload: NotAcceptedFields


class FeedbackGivenReply(_ReplyIn):
    kind: Literal["feedback.given"]
    payload: FeedbackGivenFields


class InfoRequestedReply(_ReplyIn):
    kind: Literal["info.requested"]
    payload: InfoRequestedFields


class InfoProvidedReply(_ReplyIn):
    kind: Literal["info.provided"]
    payload: InfoProvidedFields


ReplyCreate = Annotated[
    MemberAcceptedReply | MemberNotAcceptedReply | FeedbackGivenReply | InfoRequestedReply | InfoProvidedReply,
    Field(discriminator="kind"),
]


class NoticePublic(BaseModel):
    id: uuid.UUID
    kind: NoticeKind
    sender_org: str
    recipient_org: str
    member_card_no: str
    thread_id: uuid.UUID
    in_reply_to: uuid.UUID | None
    supersedes: uuid.UUID | None
    payload: dict[str, Any]
    due_date: date | None
    overdue: bool
    status: NoticeStatus
    created_at: datetime
    delivered_at: datetime | None
    acknowledged_at: datetime | None
    answered_at: datetime | None
    documents: list[DocumentRef] = Field(default_factory=list)
    signature: str | None = Field(
        default=None, description="JWS by the service over the canonical content and document hashes (see README)"
    )


class NoticeCreated(NoticePublic):
    receipt: str = Field(description="JWS signed by the service: who supplied what, which hash, when")


class NoticesPublic(BaseModel):
    items: list[NoticePublic]
    next_cursor: str | None = Field(
        default=None,
        description="send it back to continue after the last item; present even on the last page, "
        "so a system that pulls every minute resumes where it stopped (null only before anything was ever returned)",
    )
    has_more: bool = Field(default=False, description="true when more items are ready now")


class NoticeDetail(NoticePublic):
    thread: list[NoticePublic] = Field(description="every notice of the thread visible to the caller, oldest first")
