"""Schemas of organizations: what the API takes and returns (the tables are in app.models.organization)."""

from sqlmodel import Field, SQLModel

from app.models.organization import OrganizationBase, OrgSide


class OrganizationPublic(OrganizationBase):
    side: OrgSide | None = Field(
        default=None,
        description="bên trao đổi: `workplace` — nơi làm việc (quản lý hồ sơ đảng viên, giới thiệu, xin ý kiến "
        "nhận xét); `residence` — nơi cư trú (tiếp nhận, nhận xét); không có (null): không tham gia trao đổi",
    )
    operator: bool = Field(
        default=False,
        description="tổ chức vận hành hệ thống trao đổi: quản trị viên của tổ chức này quản lý tài khoản của mọi "
        "tổ chức, kiểm toán viên đọc toàn bộ nhật ký",
    )
    active: bool
    successors: list[str] = Field(
        default_factory=list,
        description="tổ chức đã giải thể theo một ấn bản danh mục: các tổ chức kế tục nhận đảng viên của nó",
    )


class OrganizationsPublic(SQLModel):
    items: list[OrganizationPublic]
    next_cursor: str | None = None
