"""What Swagger UI needs from the service: its Vietnamese words served locally, a refused login explained in
Vietnamese (RFC 6749 error_description), and an upload form whose optional fields start empty."""

import re

from tests.helpers import ACCOUNTS
from tests.live import ROOT

SAMPLE = ROOT / "docs" / "samples" / "bien-ban.pdf"


async def test_the_docs_page_loads_only_local_scripts_and_the_vietnamese_words(client):
    page = await client.get("/docs")
    assert page.status_code == 200 and '<html lang="vi">' in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/docs/swagger-ui-vi.js" in sources
    assert all(s.startswith("/") for s in sources), sources  # nothing from a CDN
    script = await client.get("/docs/swagger-ui-vi.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    for english, vietnamese in [
        ("Available authorizations", "Các cách đăng nhập"),
        ("Try it out", "Thử gọi"),
        ("Execute", "Gửi yêu cầu"),
        ("Successful Response", "Thành công"),
    ]:
        assert f'"{english}": "{vietnamese}"' in script.text


async def test_a_wrong_password_is_explained_in_vietnamese_for_the_login_dialog(client):
    spec = ACCOUNTS["ba_dinh_clerk"]
    r = await client.post(
        "/api/v1/auth/token", data={"grant_type": "password", "username": spec.login, "password": "wrong"}
    )
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_grant"
    assert r.json()["error_description"] == r.json()["detail"] and "Sai thông tin đăng nhập" in r.json()["detail"]
    r = await client.post("/api/v1/auth/token", data={"grant_type": "implicit"})
    assert r.json()["error"] == "unsupported_grant_type" and "grant_type" in r.json()["error_description"]


async def test_the_upload_forms_optional_fields_start_empty_and_empty_means_not_given(client, party):
    schema = (await client.get("/openapi.json")).json()
    for name in ("Body_document.upload", "Body_document.correct"):
        form = next(s for s in schema["components"]["schemas"].values() if s.get("title") == name)
        for field in ("supplier_unit", "attested_by", "signature"):
            assert form["properties"][field]["examples"] == [""], (name, field)
    officer = await party("ba_dinh_clerk")
    r = await officer.post(
        "/api/v1/documents",
        files={"file": ("bien-ban.pdf", SAMPLE.read_bytes(), "application/pdf")},
        data={"supplier_unit": "", "attested_by": "", "signature": ""},
    )
    assert r.status_code == 201, r.text
    assert r.json()["supplier_unit"] is None
    provenance = (await officer.get(f"/api/v1/documents/{r.json()['id']}/provenance")).json()
    assert "Vũ Thị Mai" in str(provenance), "the officer who uploaded it answers for it"
