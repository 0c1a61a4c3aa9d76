"""Khối staff work in Swagger UI: a real headless Chromium, the page in Vietnamese, served by the service alone.
A wrong password is explained, the right one logs in; then push a notice, upload a document with attestation and
pull the inbox, all through the page. Screenshots are kept under test-output/ (a CI artifact)."""

import json
import shutil
from pathlib import Path

import pytest

from tests.exchange import add_member, introduction, push
from tests.helpers import ACCOUNTS
from tests.live import ROOT, ready, serve, stop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OUTPUT = ROOT / "test-output" / "swagger-ui"
SAMPLE = ROOT / "docs" / "samples" / "bien-ban.pdf"
# Swagger UI's own English words that must no longer be seen.
ENGLISH = [
    "Authorize",
    "Available authorizations",
    "Try it out",
    "Execute",
    "Successful Response",
    "Parameters",
    "Request body",
    "Responses",
    "Logout",
    "Close",
    "Cancel",
    "Scopes are used",
]

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")]


@pytest.fixture
async def live():
    proc, base = serve(MX_LOG_LEVEL="ERROR", MX_WEBHOOK_WORKER="false")
    try:
        await ready(base, proc)
        yield base
    finally:
        stop(proc)


@pytest.fixture
async def page(live):
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            # Offline: every request outside the service fails, so a CDN dependency would show.
            await context.route(
                "**/*", lambda route: route.continue_() if route.request.url.startswith(live) else route.abort()
            )
            yield await context.new_page()
        finally:
            await browser.close()


def _operation(page, method: str, path: str):
    return page.locator(f".opblock-{method}").filter(has=page.locator(f'.opblock-summary-path[data-path="{path}"]'))


async def _execute(page, operation) -> tuple[str, str]:
    await operation.get_by_role("button", name="Gửi yêu cầu").click()
    response = operation.locator(".responses-table.live-responses-table")
    await response.locator("tbody .response-col_status").first.wait_for()
    status = (await response.locator("tbody .response-col_status").first.inner_text()).strip()
    body = await response.locator(".highlight-code").first.inner_text()
    return status, body


async def _open(page, method: str, path: str):
    operation = _operation(page, method, path)
    await operation.locator(".opblock-summary").click()
    await operation.get_by_role("button", name="Thử gọi").click()
    return operation


@pytest.mark.slow
async def test_a_staff_member_works_in_vietnamese_swagger_ui(party, live, page):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    await push(khoi, introduction(card))
    spec = ACCOUNTS["ba_dinh_clerk"]

    await page.goto(f"{live}/docs")
    await page.get_by_role("button", name="Đăng nhập").first.click()
    dialog = page.locator(".modal-ux")
    await dialog.get_by_text("Các cách đăng nhập").wait_for()
    await dialog.locator("input#oauth_username").fill(spec.login)
    await dialog.locator("input#oauth_password").fill("not-the-password")
    await dialog.locator("button.authorize").click()
    error = dialog.locator(".auth-container .errors")
    await error.get_by_text("Sai thông tin đăng nhập").wait_for()
    error_text = await error.inner_text()
    page_errors = await page.locator(".errors-wrapper").inner_text()
    await page.screenshot(path=str(OUTPUT / "1-wrong-password.png"))
    dialog_text = await dialog.inner_text()

    await dialog.locator("input#oauth_password").fill(spec.secret)
    await dialog.locator("button.authorize").click()
    await dialog.get_by_text("Đăng xuất").wait_for()  # shown once the token is obtained
    await dialog.locator("button.btn-done").click()

    # Push a notice about a member living in Ba Đình.
    operation = await _open(page, "post", "/api/v1/notices")
    notice = {
        "kind": "violation.reported",
        "member_card_no": card,
        "payload": {"summary": "Không sinh hoạt nơi cư trú 3 kỳ liên tiếp", "observed_on": "2026-11-20"},
    }
    await operation.locator("textarea.body-param__text").fill(json.dumps(notice, ensure_ascii=False))
    pushed_status, pushed_body = await _execute(page, operation)
    await operation.screenshot(path=str(OUTPUT / "2-push.png"))

    # Upload a document: the uploader is an officer, so the optional fields stay empty and she attests it.
    operation = await _open(page, "post", "/api/v1/documents")
    form = operation.locator(".opblock-body")
    optional = {
        name: await form.locator(f'tr[data-property-name="{name}"] input[type="text"]').input_value()
        for name in ("supplier_unit", "attested_by", "signature")
    }
    await form.locator('tr[data-property-name="file"] input[type="file"]').set_input_files(str(SAMPLE))
    uploaded_status, uploaded_body = await _execute(page, operation)
    await operation.screenshot(path=str(OUTPUT / "3-upload.png"))

    # Pull the inbox.
    operation = await _open(page, "get", "/api/v1/notices/inbox")
    pulled_status, pulled_body = await _execute(page, operation)
    page_text = await page.locator("body").inner_text()
    await operation.screenshot(path=str(OUTPUT / "4-inbox.png"))

    assert "Sai thông tin đăng nhập" in error_text and "invalid_grant" not in error_text, error_text
    assert "Lỗi đăng nhập" in page_errors and "invalid_grant" not in page_errors, page_errors
    assert "Phạm vi (scope)" in dialog_text and "Scopes are used" not in dialog_text
    assert optional == {"supplier_unit": "", "attested_by": "", "signature": ""}
    assert pushed_status == "201", pushed_body[:500]
    assert uploaded_status == "201", uploaded_body[:500]
    assert '"file_name": "bien-ban.pdf"' in uploaded_body and '"supplier_org": "ba-dinh"' in uploaded_body
    assert pulled_status == "200"
    assert card in pulled_body and "member.introduced" in pulled_body, pulled_body[:500]
    assert "Thành công" in page_text and "Tham số" in page_text
    left = [word for word in ENGLISH if word in page_text or word in dialog_text]
    assert not left, f"still in English: {left}"


def test_the_screenshots_folder_is_kept_out_of_git():
    assert "test-output/" in (ROOT / ".gitignore").read_text().splitlines()
    assert Path(OUTPUT).is_relative_to(ROOT / "test-output")
