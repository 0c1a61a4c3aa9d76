"""Signed tokens: the two grant types, Swagger's password form, and every forged or broken token refused."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from jose import jwt
from sqlalchemy import select, update

from app.infra.config import settings
from app.infra.db import db
from app.infra.security import keystore
from app.models.account import Account, SigningKey
from app.services.keys import rotate_keys
from tests.helpers import ACCOUNTS, assert_problem

ORGS = "/api/v1/organizations"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(obj) -> str:
    return _b64(json.dumps(obj).encode())


async def _account_id(login: str) -> uuid.UUID:
    async with db.sessions() as s:
        return (await s.execute(select(Account.id).where(Account.login == login))).scalar_one()


async def _claims(name: str = "ba_dinh_system", **overrides) -> dict:
    spec = ACCOUNTS[name]
    now = int(time.time())
    claims = {
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "sub": str(await _account_id(spec.login)),
        "org": spec.org,
        "roles": list(spec.roles),
        "token_use": "system" if spec.kind == "client" else "staff",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    for k, v in overrides.items():
        if v is _DROP:
            claims.pop(k)
        else:
            claims[k] = v
    return claims


_DROP = object()


def _sign(claims: dict, *, kid: str | None = None, pem: str | None = None, headers: dict | None = None) -> str:
    key = keystore.active
    return jwt.encode(
        claims,
        pem or key.private_pem,
        algorithm="ES256",
        headers={"kid": kid or key.kid, "typ": "at+jwt", **(headers or {})},
    )


async def _get_with(client, token: str):
    return await client.get(ORGS, headers={"Authorization": f"Bearer {token}"})


def _assert_401(r):
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")


# ---- the happy paths --------------------------------------------------------------------------------------


async def test_system_client_gets_a_token_with_client_credentials_and_reads_the_registry(client):
    spec = ACCOUNTS["ba_dinh_system"]
    r = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": spec.login, "client_secret": spec.secret},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 900
    claims = jwt.get_unverified_claims(body["access_token"])
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "ES256" and header["kid"] == keystore.active.kid and header["typ"] == "at+jwt"
    assert claims["org"] == "ba-dinh" and claims["token_use"] == "system" and claims["roles"] == ["clerk"]
    assert {"iss", "aud", "sub", "iat", "exp", "jti"} <= claims.keys()
    assert claims["exp"] - claims["iat"] <= 900

    r = await _get_with(client, body["access_token"])
    assert r.status_code == 200
    codes = [o["code"] for o in r.json()["items"]]
    assert len(codes) == 31 and codes[0] == "khoi-cqtp" and "ba-vi" in codes


async def test_client_credentials_in_http_basic_are_accepted(client):
    spec = ACCOUNTS["cau_giay_system"]
    basic = base64.b64encode(f"{spec.login}:{spec.secret}".encode()).decode()
    r = await client.post(
        "/api/v1/auth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert r.status_code == 200, r.text
    assert jwt.get_unverified_claims(r.json()["access_token"])["org"] == "cau-giay"


async def test_staff_user_logs_in_with_the_form_swagger_ui_sends(client):
    spec = ACCOUNTS["khoi_clerk"]
    # Swagger UI's OAuth2 password flow posts exactly this form (empty client fields, a scope).
    r = await client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "password",
            "username": spec.login,
            "password": spec.secret,
            "scope": "",
            "client_id": "",
            "client_secret": "",
        },
    )
    assert r.status_code == 200, r.text
    claims = jwt.get_unverified_claims(r.json()["access_token"])
    assert claims["token_use"] == "staff" and claims["org"] == "khoi-cqtp"
    r = await _get_with(client, r.json()["access_token"])
    assert r.status_code == 200


async def test_openapi_declares_the_password_flow_for_swaggers_authorize_button(client):
    schema = (await client.get("/openapi.json")).json()
    flows = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert flows["password"]["tokenUrl"] == "/api/v1/auth/token"
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text


async def test_wrong_password_wrong_grant_and_client_using_password_grant_are_refused(client):
    spec = ACCOUNTS["khoi_clerk"]
    r = await client.post(
        "/api/v1/auth/token", data={"grant_type": "password", "username": spec.login, "password": "wrong"}
    )
    body = assert_problem(r, 401, "invalid_grant")
    assert body["error"] == "invalid_grant"
    r = await client.post("/api/v1/auth/token", data={"grant_type": "implicit"})
    assert_problem(r, 422, "unsupported_grant_type")
    system = ACCOUNTS["ba_dinh_system"]
    r = await client.post(
        "/api/v1/auth/token", data={"grant_type": "password", "username": system.login, "password": system.secret}
    )
    assert_problem(r, 401, "invalid_grant")
    r = await client.post("/api/v1/auth/token", data={"grant_type": "password", "username": "nobody", "password": "x"})
    assert_problem(r, 401, "invalid_grant")


async def test_failed_logins_are_throttled_per_username(client):
    spec = ACCOUNTS["khoi_clerk"]
    for _ in range(settings.login_max_failures_per_username):
        r = await client.post(
            "/api/v1/auth/token", data={"grant_type": "password", "username": spec.login, "password": "guess"}
        )
        assert r.status_code == 401
    # Now even the right password waits: the attacker cannot tell.
    r = await client.post(
        "/api/v1/auth/token", data={"grant_type": "password", "username": spec.login, "password": spec.secret}
    )
    assert_problem(r, 429, "login_throttled")
    assert int(r.headers["retry-after"]) > 0


async def test_failed_logins_are_throttled_per_address_and_a_spoofed_forwarded_for_does_not_help(client):
    for i in range(settings.login_max_failures_per_address):
        r = await client.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": f"user{i}", "password": "guess"},
            headers={"X-Forwarded-For": f"10.0.0.{i}"},
        )
        assert r.status_code == 401
    spec = ACCOUNTS["khoi_admin"]
    r = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": spec.login, "password": spec.secret},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    assert_problem(r, 429, "login_throttled")


async def test_jwks_publishes_the_public_signing_keys_only(client):
    r = await client.get("/.well-known/jwks.json")
    assert r.status_code == 200
    keys = r.json()["keys"]
    assert keys and all(k["kty"] == "EC" and k["alg"] == "ES256" and "d" not in k for k in keys)
    assert keystore.active.kid in {k["kid"] for k in keys}


# ---- forged and broken tokens: each a 401, never a 500 -----------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "NoNe", "NONE"])
async def test_alg_none_is_refused(client, alg):
    claims = await _claims()
    token = f"{_segment({'alg': alg, 'typ': 'at+jwt', 'kid': keystore.active.kid})}.{_segment(claims)}."
    _assert_401(await _get_with(client, token))


@pytest.mark.parametrize("encoding", ["pem", "der"])
async def test_hs256_signed_with_our_public_key_is_refused(client, encoding):
    public = serialization.load_pem_private_key(keystore.active.private_pem.encode(), None).public_key()
    if encoding == "pem":
        secret = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    else:
        secret = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = (
        f"{_segment({'alg': 'HS256', 'typ': 'at+jwt', 'kid': keystore.active.kid})}.{_segment(await _claims())}"
    )
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    _assert_401(await _get_with(client, f"{signing_input}.{_b64(sig)}"))


@pytest.mark.parametrize("claim", ["exp", "iat", "aud", "iss", "sub", "jti"])
async def test_a_token_missing_a_required_claim_is_refused(client, claim):
    _assert_401(await _get_with(client, _sign(await _claims(**{claim: _DROP}))))


async def test_a_properly_signed_token_is_accepted(client):
    # The control for the tests around it: the same forging helper with nothing wrong passes.
    r = await _get_with(client, _sign(await _claims()))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000},
        {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 3900},
        {"aud": "another-service"},
        {"iss": "https://evil.example"},
        {"iat": None},
        {"exp": "x"},
        {"iat": "1700000000"},
        {"exp": int(time.time()) + 86400},
        {"roles": "admin"},
        {"sub": "not-a-uuid"},
        {"org": "cau-giay"},
        {"token_use": "staff"},
        {"sub": str(uuid.uuid4())},
    ],
    ids=[
        "expired",
        "iat-ahead",
        "wrong-aud",
        "wrong-iss",
        "iat-null",
        "exp-string",
        "iat-string",
        "lifetime-too-long",
        "roles-string",
        "sub-not-uuid",
        "org-mismatch",
        "token-use-mismatch",
        "unknown-sub",
    ],
)
async def test_bad_claims_are_refused(client, overrides):
    _assert_401(await _get_with(client, _sign(await _claims(**overrides))))


@pytest.mark.parametrize("kid", ["' OR 1=1--", "k" * 10_240, "unknown-kid", ""])
async def test_unknown_or_injected_kid_is_refused(client, kid):
    claims = await _claims()
    token = jwt.encode(claims, keystore.active.private_pem, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})
    _assert_401(await _get_with(client, token))


async def test_a_token_without_the_access_token_type_is_refused(client):
    token = jwt.encode(
        await _claims(),
        keystore.active.private_pem,
        algorithm="ES256",
        headers={"kid": keystore.active.kid, "typ": "JWT"},
    )
    _assert_401(await _get_with(client, token))


@pytest.mark.parametrize(
    "token",
    [
        "a.b.c.d.e",
        "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d",
        "not-a-token",
        "....",
        "x" * 100,
        "eyJ.eyJ.sig",
        "%00.%00.%00",
    ],
    ids=["jwe-5-parts", "jwe-header", "garbage", "dots", "long-garbage", "truncated-json", "nul"],
)
async def test_malformed_tokens_are_refused(client, token):
    _assert_401(await _get_with(client, token))


async def test_a_300kb_authorization_header_is_refused_not_crashed(client):
    _assert_401(await _get_with(client, "a" * 150_000 + "." + "b" * 150_000 + ".c"))


async def test_missing_or_non_bearer_authorization_is_refused(client):
    assert_problem(await client.get(ORGS), 401, "missing_token")
    r = await client.get(ORGS, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_problem(r, 401, "missing_token")


async def test_a_disabled_accounts_live_token_stops_working_at_once(client, party):
    district = await party("ba_dinh_system")
    assert (await district.get(ORGS)).status_code == 200
    admin = await party("ba_dinh_admin")
    account_id = await _account_id(district.spec.login)
    r = await admin.post(f"/api/v1/accounts/{account_id}/disable")
    assert r.status_code == 200 and r.json()["disabled"] is True
    _assert_401(await district.get(ORGS))
    r = await client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": district.spec.login,
            "client_secret": district.spec.secret,
        },
    )
    assert_problem(r, 401, "invalid_client")
    r = await admin.post(f"/api/v1/accounts/{account_id}/enable")
    assert r.status_code == 200 and r.json()["disabled"] is False
    # Re-enabling does not revive what was issued before the disable; a new token works at once.
    assert_problem(await district.get(ORGS), 401, "token_revoked")
    r = await client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": district.spec.login,
            "client_secret": district.spec.secret,
        },
    )
    assert r.status_code == 200, r.text
    fresh = r.json()["access_token"]
    assert (await client.get(ORGS, headers={"Authorization": f"Bearer {fresh}"})).status_code == 200


async def test_rotated_keys_keep_verifying_their_tokens_until_expiry_but_not_after(client, party):
    old = keystore.active
    district = await party("ba_dinh_system")
    fresh_before = _sign(await _claims())
    async with db.sessions() as s:
        new = await rotate_keys(session=s)
        await s.commit()
        await keystore.load(s)
    assert keystore.active.kid == new.kid != old.kid
    # Tokens the old key signed before its retirement still work; new tokens use the new key.
    assert (await _get_with(client, fresh_before)).status_code == 200
    assert (await district.get(ORGS)).status_code == 200
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert {old.kid, new.kid} <= {k["kid"] for k in jwks["keys"]}
    now = int(time.time())
    expired_old = _sign(await _claims(iat=now - 1000, exp=now - 100), kid=old.kid, pem=old.private_pem)
    _assert_401(await _get_with(client, expired_old))
    # Once the old key's retirement time has passed, it signs nothing new that we would accept.
    async with db.sessions() as s:
        retired = datetime.now(UTC) - timedelta(seconds=5)
        await s.execute(update(SigningKey).where(SigningKey.kid == old.kid).values(retired_at=retired))
        await s.commit()
        await keystore.load(s)
    after_retirement = _sign(await _claims(), kid=old.kid, pem=old.private_pem)
    _assert_401(await _get_with(client, after_retirement))
