"""Text on the way in: NFC-normalised, no control characters; and the diacritic-free fold used by search."""

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, StringConstraints

_SPACES = re.compile(r"\s+")


def nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


def fold(value: str) -> str:
    """'Nguyễn Văn Đạt' → 'nguyen van dat': what name search compares."""
    decomposed = unicodedata.normalize("NFD", value)
    kept = "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Cf", "Cc"))
    kept = kept.replace("đ", "d").replace("Đ", "D")
    return _SPACES.sub(" ", kept).strip().casefold()


def _clean_line(value: str) -> str:
    value = nfc(value)
    for ch in value:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Cs", "Co", "Cn") or ch in ("\u2028", "\u2029"):
            raise ValueError("không được chứa ký tự điều khiển hoặc ký tự vô hình")
    value = _SPACES.sub(" ", value).strip()
    if not value:
        raise ValueError("không được để trống")
    return value


def _clean_text(value: str) -> str:
    value = nfc(value).replace("\r\n", "\n")
    for ch in value:
        if ch in "\n\t":
            continue
        if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn"):
            raise ValueError("không được chứa ký tự điều khiển")
    value = value.strip()
    if not value:
        raise ValueError("không được để trống")
    return value


# One line of human text (names, wards, addresses): NFC, no control or invisible characters.
Name = Annotated[str, AfterValidator(_clean_line)]
# Free text (comments, reasons): NFC, line breaks allowed, no other control characters.
Text = Annotated[str, AfterValidator(_clean_text)]

# A committee or unit code from the registry (lowercase letters, digits, "-"): nothing else can name one.
Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


def _iso_instant(value: object) -> object:
    if not isinstance(value, str) or not _ISO_INSTANT.match(value):
        raise ValueError("phải là thời điểm ISO 8601 có múi giờ, ví dụ 2026-11-22T08:00:00+07:00")
    return value


_ISO_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$")
# A point in time as the API accepts it: ISO 8601 with an offset (never a bare number, never a naive time).
Instant = Annotated[AwareDatetime, BeforeValidator(_iso_instant)]
