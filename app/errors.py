"""Errors that carry their HTTP status and machine code (rendered as problem documents by app.http.problems)."""

from typing import Any


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
        # RFC 6749 §5.2: `error_description` is what Swagger UI's login dialog shows; the same Vietnamese words.
        super().__init__(
            detail,
            code=oauth_error,
            headers={"WWW-Authenticate": 'Bearer error="invalid_client"'},
            extra={"error": oauth_error, "error_description": detail or self.detail},
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


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"
    title = "Unsupported Media Type"
    detail = "Kiểu nội dung không được hỗ trợ."


class InsufficientStorage(AppError):
    status_code = 507
    code = "storage_full"
    title = "Insufficient Storage"
    detail = "Kho lưu trữ đã đầy; dữ liệu chưa được lưu. Vui lòng thử lại sau."


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
