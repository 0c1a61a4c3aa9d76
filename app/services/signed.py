"""The one canonical signed content of a notice: what the service signs for every notice (push, reply,
correction, a round's requests, reminders) and what a recipient verifies (README, "Verifying what you received").
A field added here is signed everywhere at once."""

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, Protocol


class DocumentHash(Protocol):
    id: uuid.UUID
    sha256: str


@dataclass(frozen=True, slots=True)
class NoticeContent:
    """The signed fields of a notice: its content, never its delivery status."""

    id: uuid.UUID
    kind: str
    sender_org: str
    recipient_org: str
    member_card_no: str
    thread_id: uuid.UUID
    in_reply_to: uuid.UUID | None
    supersedes: uuid.UUID | None
    payload: dict[str, Any]
    due_date: date | None
    created_at: datetime

    @classmethod
    def of(cls, notice: Any) -> "NoticeContent":
        """The content of a notice row or model (anything with these attributes)."""
        return cls(**{f.name: getattr(notice, f.name) for f in fields(cls)})

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> "NoticeContent":
        """The content of a notice row about to be inserted (a round's batch)."""
        return cls(**{f.name: row[f.name] for f in fields(cls)})

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "kind": self.kind, "sender_org": self.sender_org, "recipient_org": self.recipient_org,
            "member_card_no": self.member_card_no, "thread_id": str(self.thread_id),
            "in_reply_to": str(self.in_reply_to) if self.in_reply_to else None,
            "supersedes": str(self.supersedes) if self.supersedes else None, "payload": self.payload,
            "due_date": self.due_date.isoformat() if self.due_date else None, "created_at": self.created_at.isoformat(),
        }  # fmt: skip


def signed_content(content: NoticeContent, docs: list[DocumentHash]) -> bytes:
    """The canonical JSON the service signs: the content and each document's id and SHA-256."""
    body = {**content.as_json(), "documents": [{"id": str(d.id), "sha256": d.sha256} for d in docs]}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
