"""Swagger UI served by the service itself: Khối staff's browsers need no access to any outside CDN. The page is
in Vietnamese: a small script of ours (app/static/swagger-ui-vi.js), served from here too, translates Swagger UI's
own words."""

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)
STATIC = "/docs/static"
# Swagger UI 5 (it renders OpenAPI 3.1), as packaged by fastapi-offline.
ASSETS = Path(fastapi_offline.__file__).parent / "static"
TRANSLATION = Path(__file__).resolve().parent.parent / "static" / "swagger-ui-vi.js"
TRANSLATION_URL = "/docs/swagger-ui-vi.js"
_TRANSLATION_JS = TRANSLATION.read_bytes()


def mount_static(app: FastAPI) -> None:
    app.mount(STATIC, StaticFiles(directory=ASSETS), name="swagger-ui")


_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def _locked_down(page: HTMLResponse) -> HTMLResponse:
    """Only this page's own inline scripts (by hash) and the service's own assets; never inside a frame."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(m).digest()).decode()}'" for m in _INLINE_SCRIPT.findall(page.body)
    )
    page.headers["content-security-policy"] = (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    page.headers["x-frame-options"] = "DENY"
    page.headers["referrer-policy"] = "no-referrer"
    return page


@router.get("/docs", name="docs")
async def swagger_ui() -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url="/openapi.json", title="member-exchange — Swagger UI",
        swagger_js_url=f"{STATIC}/swagger-ui-bundle.js", swagger_css_url=f"{STATIC}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC}/favicon.png", oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_ui_parameters={"persistAuthorization": True, "displayRequestDuration": True},
    )  # fmt: skip
    html = page.body.decode().replace("<html>", '<html lang="vi">', 1)
    html = html.replace("</body>", f'<script src="{TRANSLATION_URL}"></script>\n</body>', 1)
    return _locked_down(HTMLResponse(html))


@router.get(TRANSLATION_URL, name="docs.translation")
async def swagger_ui_translation() -> Response:
    return Response(_TRANSLATION_JS, media_type="text/javascript; charset=utf-8")


@router.get("/docs/oauth2-redirect", name="docs.oauth2_redirect")
async def swagger_ui_redirect() -> HTMLResponse:
    return _locked_down(get_swagger_ui_oauth2_redirect_html())
