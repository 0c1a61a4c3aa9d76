"""Liveness and readiness."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.db import db

router = APIRouter(tags=["Hệ thống"])


class Health(BaseModel):
    status: str


@router.get("/healthz", response_model=Health, summary="Dịch vụ đang chạy")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="Sẵn sàng phục vụ (cơ sở dữ liệu truy cập được)",
    responses={503: {"model": Health, "description": "Cơ sở dữ liệu không truy cập được"}},
)
async def readyz() -> Health | JSONResponse:
    if await db.ping():
        return Health(status="ready")
    return JSONResponse({"status": "unavailable"}, status_code=503, headers={"Retry-After": "5"})
