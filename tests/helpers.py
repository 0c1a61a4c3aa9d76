"""Named test accounts, one per role and committee, and a Party that calls the API with its own token."""

from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from app.infra.security import hash_secret
from app.models.account import Account

KHOI = "khoi-cqtp"


@dataclass(frozen=True)
class AccountSpec:
    login: str
    kind: str
    org: str
    roles: tuple[str, ...]
    secret: str
    full_name: str | None = None
    position: str | None = None


def _user(login, org, *roles, full_name="Cán bộ kiểm thử", position="Chuyên viên"):
    return AccountSpec(login, "user", org, roles, f"pw-{login}-2026", full_name, position)


def _client(login, org, *roles):
    return AccountSpec(login, "client", org, roles or ("clerk",), f"secret-{login}-2026")


ACCOUNTS: dict[str, AccountSpec] = {
    "khoi_admin": _user("t.khoi.admin", KHOI, "admin"),
    "khoi_clerk": _user("t.khoi.clerk", KHOI, "clerk"),
    "khoi_officer": _user(
        "t.khoi.officer", KHOI, "clerk", "officer", full_name="Nguyễn Thị Lan", position="Phó Trưởng Ban Tổ chức"
    ),
    "khoi_auditor": _user("t.khoi.auditor", KHOI, "auditor"),
    "khoi_system": _client("t-khoi-system", KHOI),
    "ba_dinh_admin": _user("t.badinh.admin", "ba-dinh", "admin"),
    "ba_dinh_clerk": _user(
        "t.badinh.clerk",
        "ba-dinh",
        "clerk",
        "officer",
        full_name="Vũ Thị Mai",
        position="Chuyên viên Ban Tổ chức Quận ủy",
    ),
    "ba_dinh_auditor": _user("t.badinh.auditor", "ba-dinh", "auditor"),
    "ba_dinh_system": _client("t-ba-dinh-system", "ba-dinh"),
    "ba_dinh_admin_system": _client("t-ba-dinh-admin-system", "ba-dinh", "admin"),
    "cau_giay_admin": _user("t.caugiay.admin", "cau-giay", "admin"),
    "cau_giay_system": _client("t-cau-giay-system", "cau-giay"),
    "hoan_kiem_system": _client("t-hoan-kiem-system", "hoan-kiem"),
}


async def ensure_test_accounts(session) -> None:
    existing = set((await session.execute(select(Account.login))).scalars())
    for spec in ACCOUNTS.values():
        if spec.login not in existing:
            session.add(
                Account(
                    kind=spec.kind,
                    login=spec.login,
                    org_code=spec.org,
                    roles=list(spec.roles),
                    secret_hash=hash_secret(spec.secret),
                    full_name=spec.full_name,
                    position=spec.position,
                )
            )
    await session.flush()


@dataclass
class Party:
    """One committee's caller: every request carries its bearer token."""

    client: httpx.AsyncClient
    spec: AccountSpec
    token: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def org(self) -> str:
        return self.spec.org

    def _h(self, extra: dict | None) -> dict:
        return {"Authorization": f"Bearer {self.token}", **self.headers, **(extra or {})}

    async def get(self, url: str, *, headers: dict | None = None, **kw: Any) -> httpx.Response:
        return await self.client.get(url, headers=self._h(headers), **kw)

    async def post(self, url: str, *, headers: dict | None = None, **kw: Any) -> httpx.Response:
        return await self.client.post(url, headers=self._h(headers), **kw)

    async def put(self, url: str, *, headers: dict | None = None, **kw: Any) -> httpx.Response:
        return await self.client.put(url, headers=self._h(headers), **kw)

    async def delete(self, url: str, *, headers: dict | None = None, **kw: Any) -> httpx.Response:
        return await self.client.delete(url, headers=self._h(headers), **kw)


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """The response is an RFC 9457 problem with the status, the code, and a Vietnamese detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body["code"] == code, body
    return body
