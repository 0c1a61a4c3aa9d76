"""Opaque cursors for keyset pagination (never OFFSET)."""

import base64
import json
from typing import Any

from app.errors import BadRequest


def encode_cursor(*values: Any) -> str:
    raw = json.dumps(list(values), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None, *types: type) -> tuple | None:
    """The cursor's values, checked against the expected types; a bad cursor is a 400. No cursor, or an empty one
    (`cursor=` from a script whose variable is still unset), means "from the start"."""
    if not cursor:
        return None
    try:
        if len(cursor) > 512:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError
        return tuple(t(v) if not isinstance(v, bool) else _bad() for t, v in zip(types, values, strict=True))
    except (ValueError, TypeError, UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("Con trỏ phân trang (cursor) không hợp lệ.", code="invalid_cursor") from None


def _bad() -> Any:
    raise ValueError
