"""Liveness and readiness."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.infra.db import db
from app.infra.spool import spool

router = APIRouter(tags=["Hệ thống"])


class Health(BaseModel):
    status: str


class Readiness(Health):
    reason: str | None = None


@router.get("/healthz", response_model=Health, summary="Dịch vụ đang chạy")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    response_model_exclude_none=True,
    summary="Sẵn sàng phục vụ (cơ sở dữ liệu trả lời, nhật ký kiểm tra dự phòng ghi được)",
    responses={503: {"model": Readiness, "description": "Cơ sở dữ liệu không trả lời, hoặc nhật ký dự phòng đầy"}},
)
async def readyz() -> Readiness | JSONResponse:
    """Ready when the database answers within MX_READY_TIMEOUT_SECONDS and the audit spool can take entries;
    otherwise 503 with the reason: `database_unavailable`, `audit_spool_full` or `audit_spool_unwritable`."""
    reason = await spool.problem()
    if reason is None and not await db.ping():
        reason = "database_unavailable"
    if reason is None:
        return Readiness(status="ready")
    body = Readiness(status="unavailable", reason=reason).model_dump()
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
