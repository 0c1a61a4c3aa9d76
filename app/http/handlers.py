"""The exception handlers: every error leaves as problem+json, and leaves its audit entry."""

import functools
import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import AppError
from app.http import auditing, validation_messages
from app.http.problems import problem
from app.infra.db import unreachable

log = logging.getLogger("app.errors")

_HTTP_CODES = {
    400: ("bad_request", "Yêu cầu không hợp lệ."),
    401: ("unauthorized", "Thiếu hoặc sai thông tin xác thực."),
    403: ("forbidden", "Không có quyền truy cập."),
    404: ("not_found", "Không tìm thấy địa chỉ yêu cầu."),
    405: ("method_not_allowed", "Phương thức không được hỗ trợ cho địa chỉ này."),
    406: ("not_acceptable", "Không hỗ trợ định dạng phản hồi yêu cầu."),
    408: ("request_timeout", "Máy khách gửi dữ liệu quá chậm; yêu cầu đã bị hủy."),
    413: ("payload_too_large", "Nội dung yêu cầu vượt quá giới hạn cho phép."),
    415: ("unsupported_media_type", "Kiểu nội dung không được hỗ trợ."),
}


def _field_path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p not in ("body", "query", "path", "header"))


@functools.cache
def _path_methods(app: FastAPI) -> list[tuple[re.Pattern, list[str]]]:
    """Every documented path, as a pattern, with its methods (the router answers 405 from the first route it
    matched, so its own Allow header may miss methods other routes of the same path accept)."""
    out = []
    for template, item in app.openapi()["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(template)) + "$")
        out.append((pattern, sorted(m.upper() for m in item)))
    return out


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    methods = {m for pattern, ms in _path_methods(app) if pattern.match(path) for m in ms}
    return sorted(methods | ({"HEAD"} if "GET" in methods else set()))


_DB_DOWN = (
    503,
    "database_unavailable",
    "Service Unavailable",
    "Cơ sở dữ liệu tạm thời không truy cập được, vui lòng thử lại sau.",
)
_INTERNAL = (500, "internal_error", "Internal Server Error", "Lỗi hệ thống, đã được ghi nhận.")


async def _respond(
    request: Request,
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    headers: dict | None = None,
    extra: dict | None = None,
    database_down: bool = False,
) -> JSONResponse:
    await auditing.record_failure(request, status, code, database_down=database_down)
    return problem(status, code, title, detail, headers=headers, extra=extra)


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as problem+json with its audit entry; unexpected ones are logged and hidden."""

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return await _respond(
            request,
            exc.status_code,
            exc.code,
            exc.title,
            exc.detail,
            headers=exc.headers,
            extra=exc.extra,
            database_down=exc.code == "audit_unavailable",
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors, detail = validation_messages.describe(exc.errors(), exc.body, _field_path)
        return await _respond(
            request, 422, "validation_error", "Unprocessable Content", detail, extra={"errors": errors}
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, detail = _HTTP_CODES.get(exc.status_code, ("http_error", "Yêu cầu không thể xử lý."))
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request.app, request.url.path))
        return await _respond(request, exc.status_code, code, "HTTP error", detail, headers=headers)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeoutError)
    @app.exception_handler(ConnectionError)
    @app.exception_handler(OSError)
    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc).__name__)
        return await _respond(request, *_DB_DOWN, headers={"Retry-After": "5"}, database_down=True)

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if unreachable(exc):
            log.warning("database unavailable: %s", type(exc).__name__)
            return await _respond(request, *_DB_DOWN, headers={"Retry-After": "5"}, database_down=True)
        log.exception("database error")
        return await _respond(request, *_INTERNAL)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if unreachable(exc):  # e.g. the session's own error after its connection was cut off by a deadline
            log.warning("database unavailable: %s", type(exc).__name__, exc_info=True)
            return await _respond(request, *_DB_DOWN, headers={"Retry-After": "5"}, database_down=True)
        log.exception("unhandled error")
        return await _respond(request, *_INTERNAL)
