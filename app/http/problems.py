"""Problem documents (RFC 9457): how every error leaves the service, and how the API documents them."""

from typing import Any

from fastapi.responses import JSONResponse

PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_body(status: int, code: str, title: str, detail: str, extra: dict | None = None) -> dict[str, Any]:
    """One RFC 9457 problem document, as every error of the service leaves."""
    return {
        "type": f"https://member-exchange.hanoi/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **(extra or {}),
    }


def problem(
    status: int, code: str, title: str, detail: str, *, headers: dict | None = None, extra: dict | None = None
) -> JSONResponse:
    """A problem document as a response."""
    body = problem_body(status, code, title, detail, extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def problem_responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI `responses` entries for problem documents (RFC 9457)."""
    described = {
        400: "Yêu cầu không hợp lệ",
        401: "Thiếu hoặc sai mã truy cập",
        403: "Không có quyền",
        404: "Không có, hoặc không thuộc phạm vi của tổ chức",
        405: "Phương thức không được hỗ trợ",
        409: "Xung đột",
        413: "Nội dung quá lớn",
        414: "Địa chỉ quá dài",
        415: "Kiểu nội dung không hỗ trợ",
        422: "Dữ liệu không hợp lệ",
        429: "Quá nhiều yêu cầu",
        503: "Tạm thời không sẵn sàng",
        507: "Kho lưu trữ đầy",
    }
    schema = {
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
        },
    }
    return {
        s: {"description": described[s], "content": {"application/problem+json": {"schema": schema}}} for s in statuses
    }


# What any route may answer besides its own documented outcomes.
COMMON_PROBLEMS = problem_responses(400, 401, 403, 404, 405, 409, 413, 414, 415, 422, 429, 503)
