"""The one canonical signed content of a notice: what the service signs for every notice (push, reply,
correction, a round's requests, reminders) and what a recipient verifies (README, "Verifying what you received").
A field added here is signed everywhere at once."""

import json
import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any, Protocol

# The signed fields of a notice: its content, never its delivery status.
SIGNED_FIELDS = (
    "id",
    "kind",
    "sender_org",
    "recipient_org",
    "member_card_no",
    "thread_id",
    "in_reply_to",
    "supersedes",
    "payload",
    "due_date",
    "created_at",
)


class DocumentHash(Protocol):
    id: uuid.UUID
    sha256: str


def content_of(notice: Any) -> dict[str, Any]:
    """The signed fields of a notice row or model."""
    return {name: getattr(notice, name) for name in SIGNED_FIELDS}


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, date):  # dates and datetimes
        return value.isoformat()
    return value


def signed_content(content: Mapping[str, Any], docs: list[DocumentHash]) -> bytes:
    """The canonical JSON the service signs: the notice's signed fields (a notice's `content_of`, or the row about to
    be inserted) and each document's id and SHA-256."""
    body = {name: _plain(content[name]) for name in SIGNED_FIELDS}
    body["documents"] = [{"id": str(d.id), "sha256": d.sha256} for d in docs]
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
