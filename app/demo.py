"""Demo accounts for trying the service on a laptop. DEMO ONLY: refused in production (see config)."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.account import Account
from app.security import hash_secret

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
