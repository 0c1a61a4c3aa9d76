"""Field-level validation errors in Vietnamese: what the caller sent wrong, where (field path; for malformed JSON,
line and column), in words a district integrator or a Khối clerk reads without knowing pydantic."""

from typing import Any

# pydantic's error type → the message; {placeholders} come from the error's ctx.
_MESSAGES = {
    "missing": "Thiếu trường bắt buộc.",
    "extra_forbidden": "Trường này không được phép (không có trong lược đồ).",
    "string_type": "Phải là chuỗi ký tự.",
    "string_too_short": "Cần ít nhất {min_length} ký tự.",
    "string_too_long": "Tối đa {max_length} ký tự.",
    "string_pattern_mismatch": "Không đúng định dạng (mẫu {pattern}).",
    "string_unicode": "Phải là văn bản UTF-8.",
    "int_type": "Phải là số nguyên.",
    "int_parsing": "Phải là số nguyên.",
    "int_from_float": "Phải là số nguyên, không có phần thập phân.",
    "float_type": "Phải là số.",
    "float_parsing": "Phải là số.",
    "finite_number": "Phải là số hữu hạn.",
    "bool_type": "Phải là true hoặc false.",
    "bool_parsing": "Phải là true hoặc false.",
    "greater_than": "Phải lớn hơn {gt}.",
    "greater_than_equal": "Phải từ {ge} trở lên.",
    "less_than": "Phải nhỏ hơn {lt}.",
    "less_than_equal": "Tối đa là {le}.",
    "multiple_of": "Phải là bội số của {multiple_of}.",
    "too_short": "Cần ít nhất {min_length} phần tử.",
    "too_long": "Tối đa {max_length} phần tử.",
    "list_type": "Phải là một danh sách (mảng JSON).",
    "set_type": "Phải là một danh sách (mảng JSON).",
    "dict_type": "Phải là một đối tượng JSON.",
    "model_type": "Phải là một đối tượng JSON.",
    "model_attributes_type": "Phải là một đối tượng JSON.",
    "json_type": "Phải là JSON.",
    "date_type": "Phải là ngày theo ISO 8601, ví dụ 2026-11-20.",
    "date_parsing": "Phải là ngày theo ISO 8601, ví dụ 2026-11-20.",
    "date_from_datetime_parsing": "Phải là ngày theo ISO 8601, ví dụ 2026-11-20.",
    "date_from_datetime_inexact": "Phải là một ngày, không kèm giờ.",
    "datetime_type": "Phải là thời điểm ISO 8601, ví dụ 2026-11-22T08:00:00+07:00.",
    "datetime_parsing": "Phải là thời điểm ISO 8601, ví dụ 2026-11-22T08:00:00+07:00.",
    "datetime_from_date_parsing": "Phải là thời điểm ISO 8601, ví dụ 2026-11-22T08:00:00+07:00.",
    "timezone_aware": "Cần có múi giờ, ví dụ 2026-11-22T08:00:00+07:00.",
    "uuid_type": "Phải là UUID, ví dụ 3fa85f64-5717-4562-b3fc-2c963f66afa6.",
    "uuid_parsing": "Phải là UUID, ví dụ 3fa85f64-5717-4562-b3fc-2c963f66afa6.",
    "uuid_version": "Phiên bản UUID không được chấp nhận.",
    "enum": "Phải là một trong: {expected}.",
    "literal_error": "Phải là một trong: {expected}.",
    "url_type": "Phải là địa chỉ URL.",
    "url_parsing": "Địa chỉ URL không hợp lệ.",
    "url_scheme": "Địa chỉ URL phải dùng {expected_schemes}.",
    "url_too_long": "Địa chỉ URL quá dài (tối đa {max_length} ký tự).",
    "union_tag_invalid": "Giá trị {tag} của {discriminator} không hợp lệ; dùng một trong: {expected_tags}.",
    "union_tag_not_found": "Thiếu {discriminator}.",
    "bytes_type": "Phải là tệp hoặc dữ liệu nhị phân.",
    "bytes_too_long": "Dữ liệu quá dài (tối đa {max_length} byte).",
    "recursion_loop": "Dữ liệu lồng nhau quá sâu.",
}

# The json module's own words (JSONDecodeError.msg) → Vietnamese.
_JSON_MESSAGES = {
    "Expecting value": "thiếu giá trị (hoặc giá trị không phải JSON)",
    "Expecting property name enclosed in double quotes": "tên trường phải nằm trong dấu nháy kép",
    "Expecting ',' delimiter": "thiếu dấu phẩy ','",
    "Expecting ':' delimiter": "thiếu dấu hai chấm ':'",
    "Unterminated string starting at": "chuỗi chưa được đóng bằng dấu nháy kép",
    "Invalid control character at": "ký tự điều khiển trong chuỗi (xuống dòng phải viết \\n)",
    "Invalid \\escape": "ký tự thoát (\\) không hợp lệ",
    "Invalid \\uXXXX escape": "ký tự thoát \\uXXXX không hợp lệ",
    "Extra data": "còn dữ liệu thừa sau giá trị JSON",
    "Illegal trailing comma before end of object": "dấu phẩy thừa trước '}'",
    "Illegal trailing comma before end of array": "dấu phẩy thừa trước ']'",
}


def _or(value: Any) -> str:
    return str(value).replace(" or ", " hoặc ")


def message(err: dict) -> str:
    """One error of pydantic's `errors()` in Vietnamese."""
    kind = err.get("type", "")
    ctx = {k: _or(v) for k, v in (err.get("ctx") or {}).items()}
    if kind in ("value_error", "assertion_error"):
        # Our own validators already speak Vietnamese; pydantic only prefixes them.
        text = str(err.get("msg", ""))
        return text.removeprefix("Value error, ").removeprefix("Assertion failed, ")[:300]
    template = _MESSAGES.get(kind)
    if template is None:
        return "Giá trị không hợp lệ."
    try:
        return template.format(**ctx)
    except (KeyError, IndexError, ValueError):
        return template.split("{")[0].rstrip(" :(") + "."


def json_position(document: Any, pos: Any) -> tuple[int, int] | None:
    """Line and column (from 1) of a character offset in the received JSON text."""
    if not isinstance(pos, int) or isinstance(pos, bool):
        return None
    if isinstance(document, bytes | bytearray):
        document = bytes(document).decode("utf-8", "replace")
    if not isinstance(document, str) or pos < 0 or pos > len(document):
        return None
    line = document.count("\n", 0, pos) + 1
    column = pos - (document.rfind("\n", 0, pos) + 1) + 1
    return line, column


def json_message(err: dict, document: Any) -> tuple[str, tuple[int, int] | None]:
    """Malformed JSON: what is wrong and where."""
    raw = str((err.get("ctx") or {}).get("error", ""))
    what = next((vi for en, vi in _JSON_MESSAGES.items() if raw.startswith(en)), "cú pháp không hợp lệ")
    loc = tuple(err.get("loc", ()))
    where = json_position(document, loc[-1] if loc else None)
    if where is None:
        return f"JSON không hợp lệ: {what}.", None
    return f"JSON không hợp lệ ở dòng {where[0]}, cột {where[1]}: {what}.", where


def describe(errors: list[dict], body: Any, field_path: Any) -> tuple[list[dict], str]:
    """The problem's `errors` list and its `detail`, both in Vietnamese."""
    out: list[dict] = []
    for err in errors[:20]:
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            text, where = json_message(err, body)
            entry = {"field": "", "location": "body", "message": text, "type": "json_invalid"}
            if where:
                entry.update(line=where[0], column=where[1])
            out.append(entry)
            continue
        # pydantic puts the chosen variant of a union in the location ("violation.reported",
        # "function-after[...]"); field names here never contain '.' or '[', so such parts are dropped.
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("." in p or "[" in p)))
        discriminator = (err.get("ctx") or {}).get("discriminator")
        if str(err.get("type", "")).startswith("union_tag") and discriminator:
            loc = (*loc, str(discriminator).strip("'"))  # the field that chooses the variant, e.g. kind
        out.append(
            {
                "field": field_path(loc),
                "location": loc[0] if loc else None,
                "message": message(err),
                "type": err.get("type"),
            }
        )
    malformed = next((e for e in out if e["type"] == "json_invalid"), None)
    if malformed is not None:
        return out, malformed["message"]
    fields = ", ".join(sorted({e["field"] for e in out if e["field"]})) or "nội dung"
    return out, f"Dữ liệu gửi lên không hợp lệ ở: {fields}."
