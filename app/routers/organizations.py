"""The committee registry, readable by every party."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.http.deps import CurrentPrincipal, SessionDep
from app.models.organization import OrgKind, OrgSide
from app.schemas.organization import OrganizationPublic, OrganizationsPublic
from app.services import organizations as svc

router = APIRouter(prefix="/api/v1/organizations", tags=["Tổ chức đảng"])


@router.get(
    "",
    name="organization.list",
    response_model=OrganizationsPublic,
    summary="Danh sách tổ chức đảng (bên nơi làm việc trước, rồi theo mã)",
    description="Mỗi tổ chức tham gia trao đổi có một bên (`side`): `workplace` — nơi làm việc (nơi quản lý hồ sơ "
    "đảng viên), `residence` — nơi cư trú; không có bên: không tham gia trao đổi. `operator`: tổ chức vận hành "
    "hệ thống trao đổi.",
)
async def list_organizations(
    session: SessionDep,
    _principal: CurrentPrincipal,
    kind: Annotated[OrgKind | None, Query(description="lọc theo loại tổ chức")] = None,
    side: Annotated[
        OrgSide | None,
        Query(description="lọc theo bên trao đổi: workplace (nơi làm việc) hoặc residence (nơi cư trú)"),
    ] = None,
    active: Annotated[bool, Query(description="chỉ các tổ chức còn hiệu lực hôm nay")] = False,
) -> OrganizationsPublic:
    orgs = await svc.list_organizations(
        session=session, kind=kind.value if kind else None, side=side.value if side else None, active_only=active
    )
    return OrganizationsPublic(items=await svc.present(session=session, orgs=orgs))


@router.get(
    "/{code}",
    name="organization.read",
    response_model=OrganizationPublic,
    summary="Một tổ chức đảng theo mã",
    responses={404: {"description": "Không có tổ chức này"}},
)
async def get_organization(
    session: SessionDep,
    _principal: CurrentPrincipal,
    code: Annotated[str, Path(max_length=64, examples=[svc.example_codes().residence])],
) -> OrganizationPublic:
    org = await svc.get_organization(session=session, code=code)
    return (await svc.present(session=session, orgs=[org]))[0]
