"""Idempotency-Key for creating calls (IETF httpapi draft), scoped to the calling account.

The key's record is written in the same statement as the change it guards (the request's last statement), so a
replay exists exactly when the change does. A duplicate sent while the first is still being processed finds no
record yet (the lookup is a plain read, outside the write lock on SQLite too); it then fails on the record's key
when it writes, with everything it wrote, and is answered 409 `idempotency_in_progress` (retry: the first one's
answer is replayed). A duplicate whose own change conflicts first (a second correction of the same document) gets
that change's 409 instead; either way one change exists.
"""

import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from app.errors import BadRequest, Conflict, Unprocessable
from app.http import auditing
from app.models.base import utcnow
from app.principal import Principal
from app.repositories import idempotency as records

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
REPLAY_HEADER = "Idempotent-Replayed"
KEEP_FOR = timedelta(hours=24)


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def in_progress(exc: BaseException) -> Conflict | None:
    """The answer to a request whose closing write found its Idempotency-Key taken by a concurrent duplicate."""
    if not records.key_taken(exc):
        return None
    return Conflict(
        "Một yêu cầu khác cùng Idempotency-Key đang được xử lý.",
        code="idempotency_in_progress",
        headers={"Retry-After": "1"},
    )


async def run(
    *,
    request: Request,
    session: AsyncSession,
    principal: Principal,
    key: str | None,
    status_code: int,
    produce: Callable[[], Awaitable[BaseModel]],
    headers: Callable[[BaseModel], dict[str, str]] | None = None,
    fingerprint_extra: bytes | None = None,
) -> JSONResponse:
    """Run `produce` once per key: replay the first response for the same body, refuse another body."""
    auditing.note(request, status=status_code)
    if key is None:
        result = await produce()
        return JSONResponse(
            result.model_dump(mode="json", by_alias=True),
            status_code=status_code,
            headers=headers(result) if headers else None,
        )
    if not _KEY.match(key):
        raise BadRequest("Idempotency-Key phải gồm 1–255 ký tự ASCII in được.", code="invalid_idempotency_key")
    # JSON bodies are compared byte for byte; a multipart upload by what the caller passes (its file's hash).
    body = fingerprint_extra if fingerprint_extra is not None else await request.body()
    request_fingerprint = fingerprint(request.method, request.url.path, body)
    record = await records.find(session, account_id=principal.account_id, key=key)
    if record is not None:
        if record["fingerprint"] != request_fingerprint:
            raise Unprocessable(
                "Idempotency-Key đã dùng cho một yêu cầu có nội dung khác.", code="idempotency_key_reused"
            )
        auditing.note(request, status=record["response_status"], details={"idempotent_replay": True})
        return JSONResponse(
            record["response_body"],
            status_code=record["response_status"],
            headers={**record["response_headers"], REPLAY_HEADER: "true"},
        )
    result = await produce()
    body = result.model_dump(mode="json", by_alias=True)
    extra = headers(result) if headers else {}
    now = utcnow()
    await records.record(
        session,
        {
            "account_id": principal.account_id,
            "key": key,
            "fingerprint": request_fingerprint,
            "response_status": status_code,
            "response_body": body,
            "response_headers": extra,
            "created_at": now,
            "expires_at": now + KEEP_FOR,
        },
    )
    return JSONResponse(body, status_code=status_code, headers=extra)


async def created(
    *,
    request: Request,
    session: AsyncSession,
    principal: Principal,
    key: str | None,
    produce: Callable[[], Awaitable[BaseModel]],
    location: Callable[[Any], str],
    fingerprint_extra: bytes | None = None,
) -> JSONResponse:
    """A creating call: 201 with the new resource's Location, once per Idempotency-Key."""
    return await run(
        request=request,
        session=session,
        principal=principal,
        key=key,
        status_code=201,
        produce=produce,
        headers=lambda result: {"Location": location(result)},
        fingerprint_extra=fingerprint_extra,
    )
