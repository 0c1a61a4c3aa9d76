"""ASGI middleware: request ids, the body size limit, and one access log line per request."""

import asyncio
import json
import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.problems import PROBLEM_MEDIA_TYPE, problem_body
from app.infra.logs import request_id_var

log = logging.getLogger("app.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    """Echo or mint X-Request-ID, cap the request body, and log the outcome."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        upload_paths: tuple[str, ...] = (),
        max_upload_bytes: int = 0,
        body_timeout: float = 30.0,
        no_store_paths: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.no_store_paths = no_store_paths
        self.body_timeout = body_timeout
        self.max_body_bytes = max_body_bytes
        self.upload_paths = upload_paths
        # Room for the multipart envelope and the form fields around the file itself.
        self.max_upload_bytes = max_upload_bytes + 256 * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        path = scope.get("path", "")
        limit = self.max_upload_bytes if path.startswith(self.upload_paths) else self.max_body_bytes

        declared = headers.get(b"content-length")
        too_large = False
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                too_large = True

        received, body_done = 0, False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # later calls only wait for a disconnect (streaming responses): no deadline
                return await receive()
            try:
                # A client that stalls in the middle of its body gets a 408 instead of holding the worker.
                message = await asyncio.wait_for(receive(), timeout=self.body_timeout)
            except TimeoutError:
                raise HTTPException(408) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413)
                body_done = not message.get("more_body", False)
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode()), *extra_headers]
            await send(message)

        extra_headers = _SECURITY_HEADERS + (_NO_STORE if path in self.no_store_paths else ())
        refusal = _refuse_target(scope)
        try:
            if refusal is not None:
                await _reject(send_with_id, *refusal)
            elif too_large:
                await _reject(
                    send_with_id,
                    413,
                    "payload_too_large",
                    "Content Too Large",
                    f"Nội dung yêu cầu vượt quá giới hạn {limit} byte.",
                )
            else:
                await self.app(scope, limited_receive, send_with_id)
        finally:
            principal = scope.get("state", {}).get("principal")
            log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "org": getattr(principal, "org_code", None),
                    "account": getattr(principal, "login", None),
                },
            )
            request_id_var.reset(token)


# Every response: a browser never guesses a type other than the declared one (a document served as text/plain
# stays text). Token responses, success or error, are never cached (RFC 6749 §5.1).
_SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"),)
_NO_STORE = ((b"cache-control", b"no-store"), (b"pragma", b"no-cache"))

MAX_QUERY_BYTES = 8192


def _refuse_target(scope: Scope) -> tuple | None:
    """Refuse, before routing, what no endpoint accepts: NUL characters anywhere in the target (PostgreSQL rejects
    them in text, so they would surface as errors deep inside), and over-long query strings."""
    query = scope.get("query_string", b"")
    if len(query) > MAX_QUERY_BYTES:
        return 414, "uri_too_long", "URI Too Long", f"Chuỗi truy vấn dài quá {MAX_QUERY_BYTES} byte."
    raw_path = scope.get("raw_path") or scope.get("path", "").encode()
    if b"%00" in query or b"\x00" in query or b"%00" in raw_path or "\x00" in scope.get("path", ""):
        return 400, "invalid_characters", "Bad Request", "Địa chỉ hoặc tham số chứa ký tự NUL không hợp lệ."
    return None


async def _reject(send: Send, status: int, code: str, title: str, detail: str) -> None:
    """Answer before routing (nothing inside the application runs), with the same problem document as the rest."""
    body = json.dumps(problem_body(status, code, title, detail), ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
