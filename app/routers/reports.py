"""Reports for each party's own scope."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from app.http import auditing
from app.http.deps import SessionDep, Worker
from app.services import reports as svc

router = APIRouter(prefix="/api/v1/reports", tags=["Báo cáo"])


class ReconciliationPublic(BaseModel):
    days: int
    counts: dict[str, int]
    items: list[svc.OpenItem]


@router.get(
    "/reconciliation",
    name="report.reconciliation",
    response_model=ReconciliationPublic,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, hoặc CSV (UTF-8 có BOM) khi format=csv"}},
    summary="Đối soát: các việc còn mở giữa hai bên trong phạm vi của tổ chức",
)
async def reconciliation(
    request: Request,
    session: SessionDep,
    principal: Worker,
    days: Annotated[int, Query(ge=1, le=365, description="giới thiệu quá bao nhiêu ngày chưa tiếp nhận")] = 30,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    limit: Annotated[int, Query(ge=1, le=10_000, description="tối đa mỗi loại")] = 1000,
):
    items = await svc.reconciliation(session=session, principal=principal, days=days, limit=limit)
    auditing.note_list(request, [i.member_card_no for i in items])
    if format == "csv":
        return Response(
            svc.to_csv(items),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="doi-soat.csv"'},
        )
    counts = {c: sum(1 for i in items if i.category == c) for c in svc.LABELS}
    return ReconciliationPublic(
        days=days,
        counts=counts,
        items=items,
    )
