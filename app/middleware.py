"""ASGI middleware: request ids, the body size limit, and one access log line per request."""

import json
import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import request_id_var

log = logging.getLogger("app.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    """Echo or mint X-Request-ID, cap the request body, and log the outcome."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, upload_paths: tuple[str, ...] = (), max_upload_bytes: int = 0
    ) -> None:
        self.app = app
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

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413)
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            if too_large:
                await _reject_too_large(send_with_id, limit)
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


async def _reject_too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "type": "https://member-exchange.hanoi/problems/payload_too_large",
            "title": "Content Too Large",
            "status": 413,
            "code": "payload_too_large",
            "detail": f"Nội dung yêu cầu vượt quá giới hạn {limit} byte.",
        },
        ensure_ascii=False,
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
