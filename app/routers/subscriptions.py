"""Push delivery to each committee's own endpoint (Standard Webhooks)."""

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body

from app.http.deps import SessionDep, Subscriber
from app.http.pagination import CursorParam, LimitParam, after_value, fetch_page
from app.infra.config import settings
from app.schemas.subscription import (
    AttemptPublic,
    DeliveriesPublic,
    DeliveryPublic,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
    SubscriptionsPublic,
)
from app.services import webhooks as svc

router = APIRouter(prefix="/api/v1/subscriptions", tags=["Nhận thông báo đẩy"])

_NOT_FOUND = {404: {"description": "Không có đăng ký này trong tổ chức"}}
_EXAMPLE = {
    "https": {
        "summary": "Hệ thống của tổ chức nhận thông báo mới",
        "value": {
            "url": "https://qlvb.to-chuc.example/webhooks/member-exchange",
            "kinds": ["member.introduced", "feedback.requested"],
        },
    }
}


def _public(sub) -> SubscriptionPublic:
    return SubscriptionPublic(
        id=sub.id,
        org_code=sub.org_code,
        url=sub.url,
        kinds=sub.kinds,
        active=sub.active,
        disabled_reason=sub.disabled_reason,
        created_at=sub.created_at,
    )


@router.post(
    "",
    name="subscription.create",
    response_model=SubscriptionCreated,
    status_code=201,
    summary="Đăng ký địa chỉ nhận thông báo (khóa ký chỉ hiện một lần)",
    responses={422: {"description": "URL không hợp lệ hoặc không được phép"}},
)
async def create(
    session: SessionDep, principal: Subscriber, data: Annotated[SubscriptionCreate, Body(openapi_examples=_EXAMPLE)]
) -> SubscriptionCreated:
    sub, secret = await svc.create(session=session, principal=principal, data=data)
    return SubscriptionCreated(**_public(sub).model_dump(), secret=secret)


@router.get("", name="subscription.list", response_model=SubscriptionsPublic, summary="Các đăng ký của tổ chức")
async def list_subscriptions(session: SessionDep, principal: Subscriber) -> SubscriptionsPublic:
    return SubscriptionsPublic(items=[_public(s) for s in await svc.list_own(session=session, principal=principal)])


@router.delete(
    "/{subscription_id}",
    name="subscription.delete",
    response_model=SubscriptionPublic,
    summary="Hủy đăng ký",
    responses=_NOT_FOUND,
)
async def delete(session: SessionDep, principal: Subscriber, subscription_id: uuid.UUID) -> SubscriptionPublic:
    return _public(await svc.delete(session=session, principal=principal, subscription_id=subscription_id))


@router.post(
    "/{subscription_id}/rotate-secret",
    name="subscription.rotate",
    response_model=SubscriptionCreated,
    summary="Đổi khóa ký (khóa cũ vẫn ký kèm trong thời gian chuyển tiếp)",
    responses=_NOT_FOUND,
)
async def rotate(session: SessionDep, principal: Subscriber, subscription_id: uuid.UUID) -> SubscriptionCreated:
    secret = await svc.rotate_secret(session=session, principal=principal, subscription_id=subscription_id)
    sub = await svc.get_own(session=session, principal=principal, subscription_id=subscription_id)
    return SubscriptionCreated(**_public(sub).model_dump(), secret=secret)


def _delivery(d, attempts) -> DeliveryPublic:
    return DeliveryPublic(
        id=d.id, notice_id=d.notice_id, event_type=d.event_type, status=d.status, attempts=d.attempts,
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None, created_at=d.created_at,
        delivered_at=d.delivered_at,
        history=[AttemptPublic(attempt=a.attempt, at=a.at, status_code=a.status_code, error=a.error,
                               duration_ms=a.duration_ms) for a in attempts],
    )  # fmt: skip


@router.get(
    "/{subscription_id}/deliveries",
    name="subscription.deliveries",
    response_model=DeliveriesPublic,
    summary="Lịch sử gửi, từng lần thử",
    responses=_NOT_FOUND,
)
async def list_deliveries(
    session: SessionDep,
    principal: Subscriber,
    subscription_id: uuid.UUID,
    cursor: CursorParam = None,
    limit: LimitParam = settings.page_size_default,
) -> DeliveriesPublic:
    after = after_value(cursor, datetime.fromisoformat)
    page = await fetch_page(
        lambda n: svc.deliveries(
            session=session, principal=principal, subscription_id=subscription_id, after=after, limit=n
        ),
        limit,
    )
    return DeliveriesPublic(
        items=[_delivery(d, a) for d, a in page.items],
        next_cursor=page.next_cursor(lambda row: row[0].created_at.isoformat()),
    )


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/redeliver",
    name="subscription.redeliver",
    response_model=DeliveryPublic,
    summary="Gửi lại ngay",
    responses=_NOT_FOUND,
)
async def redeliver(
    session: SessionDep, principal: Subscriber, subscription_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryPublic:
    d = await svc.redeliver(
        session=session, principal=principal, subscription_id=subscription_id, delivery_id=delivery_id
    )
    return _delivery(d, [])
