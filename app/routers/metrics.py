"""GET /metrics: Prometheus text format, for the operator's monitoring only (bearer token, MX_METRICS_TOKEN)."""

import asyncio
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from app.errors import NotFound, Unauthorized
from app.infra.config import settings
from app.metrics.collect import database_figures, render, sample_pool

router = APIRouter(tags=["Hệ thống"])


def _authorize(request: Request) -> None:
    """With MX_METRICS_TOKEN set, only that bearer token; without it, open outside production, absent in production."""
    expected = settings.metrics_token
    if not expected:
        if settings.environment == "production":
            raise NotFound("Không tìm thấy địa chỉ yêu cầu.", code="not_found")
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        raise Unauthorized("Cần mã truy cập của hệ thống giám sát (MX_METRICS_TOKEN).", code="metrics_token_required")


@router.get(
    "/metrics",
    include_in_schema=False,  # the operator's, not part of the committees' API
    response_class=Response,
    name="metrics",
    summary="Số đo cho Prometheus",
)
async def metrics(request: Request) -> Response:
    _authorize(request)
    families = await database_figures.current()
    sample_pool()
    body = await asyncio.to_thread(render, families)
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)  # what Prometheus 2 and 3 both read
