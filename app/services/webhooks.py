"""Push delivery (Standard Webhooks): subscriptions, the outbox written with each notice, the delivery worker.

Deliveries are rows written in the transaction of the notice they announce, so a crash between commit and
sending loses nothing. The worker leases due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several service
processes never send the same one at once), sends them, and records each attempt.
"""

import asyncio
import base64
import hashlib
import json
import logging
import random
import re
import secrets
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from ipaddress import ip_address
from urllib.parse import urlsplit

import httpx
from cryptography.fernet import Fernet
from standardwebhooks.webhooks import Webhook

from app.errors import NotFound, Unprocessable
from app.infra.config import settings
from app.infra.db import Session, SessionFactory
from app.infra.loops import repeat
from app.models.base import utcnow
from app.models.notice import Notice
from app.models.subscription import Delivery, DeliveryAttempt, Subscription
from app.principal import Principal
from app.repositories import webhooks as repo
from app.repositories.notices import NoticeRow
from app.schemas.subscription import SubscriptionCreate

log = logging.getLogger("app.webhooks")

EVENT_TYPE = "notice.created"
MAX_RETRY_AFTER = timedelta(hours=24)


def _fernet() -> Fernet:
    key = hashlib.sha256(b"member-exchange/subscriptions:" + settings.key_passphrase.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _seal(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def _unseal(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


# ---- the address guard (SSRF) -----------------------------------------------------------------------------

_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_INVALID_URL = (
    "URL phải có dạng https://máy-chủ[:cổng]/đường-dẫn: chỉ ký tự ASCII (tên miền quốc tế viết dạng punycode), "
    "không khoảng trắng hay ký tự điều khiển, cổng 1–65535, không kèm thông tin đăng nhập."
)


def _valid_host(host: str) -> bool:
    try:
        ip_address(host)
        return True
    except ValueError:
        labels = host.removesuffix(".").split(".")
        return len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def normalise_url(raw: str) -> httpx.URL:
    """The URL as it will be used, or Unprocessable `invalid_url`: ASCII only (IDN hosts in punycode), no
    whitespace or control characters anywhere, a plain host name or IP literal, a port in 1–65535."""
    if not raw.isascii() or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise Unprocessable(_INVALID_URL, code="invalid_url")
    try:
        url = httpx.URL(raw)
        parts = urlsplit(raw)
        port = parts.port  # ValueError for a port out of range, "80:80", an unclosed "[::1"
    except (httpx.InvalidURL, ValueError):
        raise Unprocessable(_INVALID_URL, code="invalid_url") from None
    if (
        url.scheme not in ("https", "http")
        or not url.host
        or not _valid_host(url.host)
        or url.userinfo
        or url.fragment
        or (port is not None and not 0 < port < 65536)
        or (url.port is not None and not 0 < url.port < 65536)
    ):
        raise Unprocessable(_INVALID_URL, code="invalid_url")
    return url


async def _getaddrinfo(host: str, port: int) -> list[str]:
    """The host's addresses, in the resolver's order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


async def resolve_allowed(url: httpx.URL) -> list[str]:
    """The (normalised) URL's resolved addresses, all inside the operator's allow-list; Unprocessable otherwise."""
    try:
        addresses = await _getaddrinfo(url.host, url.port or (443 if url.scheme == "https" else 80))
    except (OSError, UnicodeError):
        raise Unprocessable("Không phân giải được tên máy chủ của URL.", code="url_unresolvable") from None
    if not addresses or not all(any(ip_address(a) in net for net in settings.webhook_networks) for a in addresses):
        raise Unprocessable("Địa chỉ của URL không nằm trong danh sách cho phép của hệ thống.", code="url_not_allowed")
    if url.scheme == "http" and (
        settings.environment == "production" or not all(ip_address(a).is_loopback for a in addresses)
    ):
        raise Unprocessable("Phải dùng HTTPS (HTTP chỉ cho địa chỉ loopback khi phát triển).", code="https_required")
    return addresses


def pinned_request(client: httpx.AsyncClient, url: httpx.URL, address: str, **kw) -> httpx.Request:
    """A request to `url` that connects to `address`, the one that was checked (no second DNS lookup, so a
    name that changes its answer cannot redirect it), with the name kept in Host and in TLS (SNI and the
    certificate check)."""
    headers = {**kw.pop("headers", {}), "host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return client.build_request("POST", url.copy_with(host=address), headers=headers, extensions=extensions, **kw)


# ---- subscriptions ----------------------------------------------------------------------------------------


async def create(*, session: Session, principal: Principal, data: SubscriptionCreate) -> tuple[Subscription, str]:
    """Subscribe the caller's committee; returns the subscription and its secret (shown once)."""
    url = normalise_url(data.url)
    await resolve_allowed(url)
    secret = _new_secret()
    sub = Subscription(
        org_code=principal.org_code,
        url=str(url),
        kinds=[k.value for k in data.kinds],
        secret=_seal(secret),
        created_by=principal.account_id,
    )
    await repo.add(session, sub)
    return sub, secret


async def get_own(*, session: Session, principal: Principal, subscription_id: uuid.UUID) -> Subscription:
    """The caller's committee's subscription, or 404."""
    sub = await repo.get_own(session, org=principal.org_code, subscription_id=subscription_id)
    if sub is None:
        raise NotFound("Không tìm thấy đăng ký nhận thông báo.", code="subscription_not_found")
    return sub


async def list_own(*, session: Session, principal: Principal) -> list[Subscription]:
    return await repo.own(session, principal.org_code)


async def delete(*, session: Session, principal: Principal, subscription_id: uuid.UUID) -> Subscription:
    """Stop delivering; what was pending is cancelled, the history stays."""
    sub = await get_own(session=session, principal=principal, subscription_id=subscription_id)
    sub.deleted_at, sub.active = utcnow(), False
    await repo.cancel_pending(session, sub.id)
    await session.flush()
    return sub


async def rotate_secret(*, session: Session, principal: Principal, subscription_id: uuid.UUID) -> str:
    """A new secret; the old one keeps signing alongside it for the grace period."""
    sub = await get_own(session=session, principal=principal, subscription_id=subscription_id)
    secret = _new_secret()
    sub.previous_secret = sub.secret
    sub.previous_secret_until = utcnow() + timedelta(seconds=settings.webhook_secret_grace_seconds)
    sub.secret = _seal(secret)
    await session.flush()
    return secret


Wanted = repo.Wanted


async def subscriptions_by_org(*, session: Session, org_codes: set[str] | None = None) -> dict[str, list[Subscription]]:
    """Active subscriptions, by committee (for creating deliveries in bulk)."""
    return await repo.active_by_org(session, org_codes)


def delivery_rows(
    subs: Sequence[Subscription | Wanted], *, notice_id: uuid.UUID, kind: str, created_at: datetime
) -> list[dict]:
    """The outbox rows announcing one notice to the subscriptions that want its kind."""
    rows = []
    for sub in subs:
        if sub.kinds and kind not in sub.kinds:
            continue
        # Thin on purpose: the receiver fetches the notice through the authenticated API.
        body = {
            "type": EVENT_TYPE,
            "timestamp": created_at.isoformat(),
            "data": {"notice_id": str(notice_id), "kind": kind, "created_at": created_at.isoformat()},
        }
        rows.append(
            {
                "id": uuid.uuid4(),
                "subscription_id": sub.id,
                "notice_id": notice_id,
                "event_type": EVENT_TYPE,
                "payload": json.dumps(body, separators=(",", ":")),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": created_at,
                "created_at": created_at,
                "delivered_at": None,
            }
        )
    return rows


async def enqueue(*, session: Session, notice: Notice | NoticeRow) -> None:
    """One delivery per matching subscription of the recipient, written with the notice (the request's last
    statement)."""
    subs = await repo.wanted_by(session, notice.recipient_org)
    if subs:
        rows = delivery_rows(subs, notice_id=notice.id, kind=notice.kind, created_at=notice.created_at)
        await repo.add_deliveries_later(session, rows)


async def enqueue_many(*, session: Session, notices: Sequence[Notice]) -> None:
    """Deliveries for many notices at once (a registry edition's transfers): the recipients' subscriptions are read
    in one query."""
    if not notices:
        return
    subs = await repo.active_by_org(session, {n.recipient_org for n in notices})
    rows = [
        row
        for n in notices
        for row in delivery_rows(subs.get(n.recipient_org, []), notice_id=n.id, kind=n.kind, created_at=n.created_at)
    ]
    if rows:
        repo.add_deliveries(session, rows)


async def deliveries(
    *, session: Session, principal: Principal, subscription_id: uuid.UUID, after: datetime | None, limit: int
) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
    """The subscription's deliveries, newest first, each with every attempt."""
    sub = await get_own(session=session, principal=principal, subscription_id=subscription_id)
    return await repo.deliveries_of(session, subscription_id=sub.id, after=after, limit=limit)


async def redeliver(
    *, session: Session, principal: Principal, subscription_id: uuid.UUID, delivery_id: uuid.UUID
) -> Delivery:
    """Send a delivery again, now (its history is kept)."""
    sub = await get_own(session=session, principal=principal, subscription_id=subscription_id)
    delivery = await repo.delivery(session, delivery_id)
    if delivery is None or delivery.subscription_id != sub.id:
        raise NotFound("Không tìm thấy lần gửi này.", code="delivery_not_found")
    if not sub.active:
        raise Unprocessable("Đăng ký đang bị tạm dừng.", code="subscription_disabled")
    delivery.status, delivery.next_attempt_at = "pending", utcnow()
    await session.flush()
    return delivery


# ---- the worker ---------------------------------------------------------------------------------------------


def _retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return min(timedelta(seconds=max(0, int(value))), MAX_RETRY_AFTER)
    except ValueError:
        try:
            return min(max(parsedate_to_datetime(value) - datetime.now(UTC), timedelta(0)), MAX_RETRY_AFTER)
        except (TypeError, ValueError):
            return None


def _signature(sub: Subscription, delivery: Delivery, at: datetime) -> str:
    secrets_now = [_unseal(sub.secret)]
    if sub.previous_secret and sub.previous_secret_until and sub.previous_secret_until > at:
        secrets_now.append(_unseal(sub.previous_secret))
    return " ".join(Webhook(s).sign(str(delivery.id), at, delivery.payload) for s in secrets_now)


async def _send(client: httpx.AsyncClient, sub: Subscription, delivery: Delivery) -> dict:
    at = datetime.now(UTC).replace(microsecond=0)
    started = time.monotonic()
    outcome = {"status_code": None, "error": None, "retry_after": None, "duration_ms": 0}
    if not sub.active:
        outcome["error"] = "subscription_disabled"
        return outcome
    try:
        url = normalise_url(sub.url)
        # Checked again at every attempt (DNS may have changed), and the connection goes to the checked address.
        addresses = await resolve_allowed(url)
        request = pinned_request(
            client,
            url,
            addresses[0],
            content=delivery.payload,
            headers={
                "content-type": "application/json",
                "webhook-id": str(delivery.id),
                "webhook-timestamp": str(int(at.timestamp())),
                "webhook-signature": _signature(sub, delivery, at),
            },
        )
        response = await client.send(request)
        outcome["status_code"] = response.status_code
        if response.status_code in (429, 503):
            outcome["retry_after"] = _retry_after(response)
    except Unprocessable as exc:
        outcome["error"] = exc.code
    except httpx.TimeoutException:
        outcome["error"] = "timeout"
    except httpx.HTTPError as exc:
        outcome["error"] = type(exc).__name__
    except Exception as exc:  # whatever goes wrong is this delivery's outcome, never the batch's
        log.warning("delivery %s: %s", delivery.id, type(exc).__name__, exc_info=True)
        outcome["error"] = type(exc).__name__[:100]
    outcome["duration_ms"] = int((time.monotonic() - started) * 1000)
    return outcome


def _failed(error: str) -> dict:
    return {"status_code": None, "error": error[:100], "retry_after": None, "duration_ms": 0}


def _next_attempt(attempt: int, retry_after: timedelta | None) -> datetime | None:
    """When to try again after `attempt` failed attempts; None when the schedule is used up."""
    schedule = settings.webhook_retry_schedule
    if attempt > len(schedule):
        return None
    wait = timedelta(seconds=schedule[attempt - 1] * random.uniform(0.8, 1.2))
    if retry_after is not None:
        wait = max(wait, retry_after)
    return utcnow() + wait


async def deliver_due(*, sessions: SessionFactory, client: httpx.AsyncClient, batch: int = 20) -> int:
    """Lease due deliveries, send them concurrently, record the outcomes; returns how many were sent."""
    lease = timedelta(seconds=settings.webhook_timeout_seconds + 15)
    async with sessions() as session:
        due = await repo.due(session, now=utcnow(), batch=batch)
        if not due:
            await session.commit()
            return 0
        for d in due:  # leased: no other worker picks these up until the lease runs out
            d.next_attempt_at = utcnow() + lease
        subs = await repo.subscriptions(session, {d.subscription_id for d in due})
        await session.commit()
    outcomes = await asyncio.gather(*(_send(client, subs[d.subscription_id], d) for d in due), return_exceptions=True)
    outcomes = [o if isinstance(o, dict) else _failed(type(o).__name__) for o in outcomes]
    async with sessions() as session:
        for d, outcome in zip(due, outcomes, strict=True):
            await _record(session, d, subs[d.subscription_id], outcome)
        await session.commit()
    return len(due)


async def _record(session: Session, d: Delivery, sub: Subscription, outcome: dict) -> None:
    delivery = await repo.delivery(session, d.id)
    delivery.attempts += 1
    repo.add_attempt(
        session,
        DeliveryAttempt(
            delivery_id=d.id,
            attempt=delivery.attempts,
            status_code=outcome["status_code"],
            error=outcome["error"],
            duration_ms=outcome["duration_ms"],
        ),
    )
    code = outcome["status_code"]
    if code is not None and 200 <= code < 300:
        delivery.status, delivery.delivered_at = "succeeded", utcnow()
    elif code == 410 or outcome["error"] == "subscription_disabled":
        delivery.status = "failed"
        if code == 410:
            await repo.disable(session, sub.id, "Bên nhận trả về 410 Gone")
            log.warning("subscription %s disabled: receiver answered 410", sub.id)
    else:
        following = _next_attempt(delivery.attempts, outcome["retry_after"])
        if following is None:
            delivery.status = "failed"
            log.warning("delivery %s failed after %d attempts", d.id, delivery.attempts)
        else:
            delivery.next_attempt_at = following


async def run_worker(*, sessions: SessionFactory, stop: asyncio.Event) -> None:
    """Background loop of a service process: deliver what is due, at once again while there was work."""
    async with httpx.AsyncClient(
        timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
    ) as client:
        await repeat(
            lambda: deliver_due(sessions=sessions, client=client),
            stop=stop,
            every=lambda: settings.webhook_poll_seconds,
            log=log,
            failure="webhook delivery round failed; retrying",
            again=bool,
        )
