"""Opaque cursors for keyset pagination (never OFFSET)."""

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query

from app.errors import BadRequest
from app.infra.config import settings

T = TypeVar("T")


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
        # Only plain JSON: no floats at all (1e308, NaN, Infinity), so an integer is exactly what was encoded.
        values = json.loads(raw, parse_float=_refuse, parse_constant=_refuse)
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError
        return tuple(_value(t, v) for t, v in zip(types, values, strict=True))
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("Con trỏ phân trang (cursor) không hợp lệ.", code="invalid_cursor") from None


# Whatever a cursor holds must fit the database's columns: integers are signed 64-bit, strings are short.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_MAX_STR = 256


def _refuse(_text: str) -> Any:
    raise ValueError


def _value(t: type, v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise ValueError
    if isinstance(v, int) and not _INT_MIN <= v <= _INT_MAX:
        raise ValueError
    if isinstance(v, str) and len(v) > _MAX_STR:
        raise ValueError
    if t is int and not isinstance(v, int):
        raise ValueError
    return t(v)


# ---- pages --------------------------------------------------------------------------------------------------

CursorParam = Annotated[str | None, Query(max_length=512)]
LimitParam = Annotated[int, Query(ge=1, le=settings.page_size_max)]


def after_value(cursor: str | None, t: Callable[[Any], Any]) -> Any | None:
    """The single value a cursor of this list holds (None: from the start)."""
    after = decode_cursor(cursor, t)
    return after[0] if after else None


@dataclass
class Page(Generic[T]):
    """One page of a keyset-paginated list: its items and whether more follow."""

    items: list[T]
    more: bool

    def next_cursor(self, key: Callable[[T], Any]) -> str | None:
        """The cursor after the last item, when more follow."""
        return encode_cursor(key(self.items[-1])) if self.more else None


async def fetch_page(fetch: Callable[[int], Awaitable[list[T]]], limit: int) -> Page[T]:
    """Fetch one item more than the page holds: the page, and whether more follow."""
    rows = await fetch(limit + 1)
    return Page(rows[:limit], len(rows) > limit)
