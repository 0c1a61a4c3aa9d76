"""Demo accounts and demo members for trying the service on a laptop. DEMO ONLY: refused in production (see
config and `member-exchange init`)."""

from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.infra.security import hash_secret
from app.models.account import Account
from app.models.member import Member, ResidenceStatus
from app.text import fold

# login, kind, org, roles, secret, full name, position
DEMO_ACCOUNTS = [
    ("khoi.admin", "user", "khoi-cqtp", ["admin"], "demo-khoi-admin-2026", "Trần Văn Quản", "Quản trị hệ thống"),
    ("khoi.clerk", "user", "khoi-cqtp", ["clerk"], "demo-khoi-clerk-2026", "Lê Thị Hoa", "Chuyên viên Ban Tổ chức"),
    (
        "khoi.officer",
        "user",
        "khoi-cqtp",
        ["clerk", "officer"],
        "demo-khoi-officer-2026",
        "Nguyễn Thị Lan",
        "Phó Trưởng Ban Tổ chức",
    ),
    ("khoi.auditor", "user", "khoi-cqtp", ["auditor"], "demo-khoi-auditor-2026", "Phạm Minh Đức", "Kiểm tra viên"),
    ("badinh.admin", "user", "ba-dinh", ["admin"], "demo-badinh-admin-2026", "Đỗ Văn Hùng", "Quản trị hệ thống"),
    (
        "badinh.clerk",
        "user",
        "ba-dinh",
        ["clerk", "officer"],
        "demo-badinh-clerk-2026",
        "Vũ Thị Mai",
        "Chuyên viên Ban Tổ chức Quận ủy",
    ),
    ("demo-khoi-system", "client", "khoi-cqtp", ["clerk"], "demo-secret-khoi-system", None, None),
    ("demo-ba-dinh-system", "client", "ba-dinh", ["clerk"], "demo-secret-ba-dinh-system", None, None),
    ("demo-cau-giay-system", "client", "cau-giay", ["clerk"], "demo-secret-cau-giay-system", None, None),
]


async def ensure_demo_accounts(*, session: AsyncSession) -> int:
    """Create the demo accounts that are missing; returns how many were created."""
    existing = set((await session.execute(select(Account.login))).scalars())
    created = 0
    for login, kind, org, roles, secret, full_name, position in DEMO_ACCOUNTS:
        if login in existing:
            continue
        session.add(
            Account(
                kind=kind,
                login=login,
                org_code=org,
                roles=roles,
                secret_hash=hash_secret(secret),
                full_name=full_name,
                position=position,
            )
        )
        created += 1
    await session.flush()
    return created


# Demo members, one or more per demo district; the README's walkthrough uses 01234567 (Ba Đình). Marked as demo
# data in the name and the workplace unit, so nobody takes them for real people. Their wards are among those the
# example registry edition (app/data/editions) maps, so that trying the edition on the demo moves every one.
DEMO_WORKPLACE = "khoi-cqtp"  # the demo members work in city agencies
DEMO_UNIT_CODE = "demo-don-vi-mau"
DEMO_UNIT_NAME = "DEMO — Đơn vị mẫu (dữ liệu thử, không phải thật)"
# card, name, district, ward, address, status
DEMO_MEMBERS = [
    (
        "01234567",
        "Nguyễn Văn An (DEMO)",
        "ba-dinh",
        "Phường Giảng Võ",
        "Số 12 ngõ 5 Giảng Võ",
        ResidenceStatus.accepted,
    ),
    (
        "01234568",
        "Trần Thị Bình (DEMO)",
        "ba-dinh",
        "Phường Ngọc Hà",
        "Số 3 Hoàng Hoa Thám",
        ResidenceStatus.introduced,
    ),
    (
        "01234569",
        "Lê Văn Cường (DEMO)",
        "cau-giay",
        "Phường Dịch Vọng",
        "Số 8 Trần Thái Tông",
        ResidenceStatus.accepted,
    ),
]


async def ensure_demo_members(*, session: AsyncSession) -> int:
    """Create the demo members that are missing; returns how many were created."""
    existing = set(
        (
            await session.execute(
                select(Member.party_card_no).where(Member.party_card_no.in_([m[0] for m in DEMO_MEMBERS]))
            )
        ).scalars()
    )
    created = 0
    for card, name, district, ward, address, status in DEMO_MEMBERS:
        if card in existing:
            continue
        accepted = status == ResidenceStatus.accepted
        session.add(
            Member(
                party_card_no=card,
                workplace_org=DEMO_WORKPLACE,
                full_name=name,
                name_folded=fold(name),
                birth_date=date(1985, 4, 12),
                workplace_unit_code=DEMO_UNIT_CODE,
                workplace_unit_name=DEMO_UNIT_NAME,
                residence_org=district,
                residence_ward=ward,
                ward_folded=fold(ward),
                residence_address=address,
                residence_since=date(2020, 6, 1),
                residence_status=status.value,
                residence_cell="Chi bộ Tổ dân phố số 7 (DEMO)" if accepted else None,
            )
        )
        created += 1
    await session.flush()
    return created
