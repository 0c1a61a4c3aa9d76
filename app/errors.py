"""Errors that carry their HTTP status and machine code, and the one handler that renders them (RFC 9457)."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("app.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"


class AppError(Exception):
    """A business outcome the client must handle: status, stable code, Vietnamese detail."""

    status_code = 400
    code = "bad_request"
    title = "Bad Request"
    detail = "Yêu cầu không hợp lệ."

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: dict | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.detail
        self.code = code or self.code
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.detail)


class BadRequest(AppError):
    pass


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"
    title = "Unauthorized"
    detail = "Thiếu hoặc sai thông tin xác thực."

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class InvalidCredentials(AppError):
    """A refused login at the token endpoint (carries the OAuth2 `error` too)."""

    status_code = 401
    code = "invalid_grant"
    title = "Unauthorized"
    detail = "Sai thông tin đăng nhập hoặc tài khoản đã bị khóa."

    def __init__(self, detail: str | None = None, *, oauth_error: str = "invalid_grant") -> None:
        super().__init__(
            detail,
            code=oauth_error,
            headers={"WWW-Authenticate": 'Bearer error="invalid_client"'},
            extra={"error": oauth_error},
        )


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"
    title = "Forbidden"
    detail = "Tài khoản không có quyền thực hiện thao tác này."


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    title = "Not Found"
    detail = "Không tìm thấy."


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    title = "Conflict"
    detail = "Xung đột với trạng thái hiện tại."


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"
    title = "Content Too Large"
    detail = "Nội dung yêu cầu vượt quá giới hạn cho phép."


class Unprocessable(AppError):
    status_code = 422
    code = "unprocessable"
    title = "Unprocessable Content"
    detail = "Dữ liệu không hợp lệ."


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"
    title = "Too Many Requests"
    detail = "Quá nhiều yêu cầu, vui lòng thử lại sau."

    def __init__(self, detail: str | None = None, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(max(1, retry_after))})


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"
    title = "Service Unavailable"
    detail = "Dịch vụ tạm thời không sẵn sàng, vui lòng thử lại sau."

    def __init__(self, detail: str | None = None, *, code: str | None = None, retry_after: int = 5) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(retry_after)})


def problem(
    status: int, code: str, title: str, detail: str, *, headers: dict | None = None, extra: dict | None = None
) -> JSONResponse:
    """Render one RFC 9457 problem document."""
    body = {
        "type": f"https://member-exchange.hanoi/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **(extra or {}),
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


_HTTP_CODES = {
    400: ("bad_request", "Yêu cầu không hợp lệ."),
    401: ("unauthorized", "Thiếu hoặc sai thông tin xác thực."),
    403: ("forbidden", "Không có quyền truy cập."),
    404: ("not_found", "Không tìm thấy địa chỉ yêu cầu."),
    405: ("method_not_allowed", "Phương thức không được hỗ trợ cho địa chỉ này."),
    406: ("not_acceptable", "Không hỗ trợ định dạng phản hồi yêu cầu."),
    413: ("payload_too_large", "Nội dung yêu cầu vượt quá giới hạn cho phép."),
    415: ("unsupported_media_type", "Kiểu nội dung không được hỗ trợ."),
}


def _field_path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p not in ("body", "query", "path", "header"))


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as problem+json; unexpected ones are logged and hidden."""

    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        return problem(exc.status_code, exc.code, exc.title, exc.detail, headers=exc.headers, extra=exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors()[:20]:
            loc = tuple(err.get("loc", ()))
            errors.append(
                {
                    "field": _field_path(loc),
                    "location": loc[0] if loc else None,
                    "message": str(err.get("msg", ""))[:300],
                    "type": err.get("type"),
                }
            )
        fields = ", ".join(sorted({e["field"] for e in errors if e["field"]})) or "nội dung"
        detail = f"Dữ liệu gửi lên không hợp lệ ở: {fields}."
        return problem(422, "validation_error", "Unprocessable Content", detail, extra={"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, detail = _HTTP_CODES.get(exc.status_code, ("http_error", "Yêu cầu không thể xử lý."))
        return problem(exc.status_code, code, "HTTP error", detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeoutError)
    @app.exception_handler(ConnectionError)
    @app.exception_handler(OSError)
    async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc).__name__)
        return problem(
            503,
            "database_unavailable",
            "Service Unavailable",
            "Cơ sở dữ liệu tạm thời không truy cập được, vui lòng thử lại sau.",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(DBAPIError)
    async def _database_error(_request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return problem(
                503,
                "database_unavailable",
                "Service Unavailable",
                "Cơ sở dữ liệu tạm thời không truy cập được, vui lòng thử lại sau.",
                headers={"Retry-After": "5"},
            )
        log.exception("database error")
        return problem(500, "internal_error", "Internal Server Error", "Lỗi hệ thống, đã được ghi nhận.")

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem(500, "internal_error", "Internal Server Error", "Lỗi hệ thống, đã được ghi nhận.")
