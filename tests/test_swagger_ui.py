"""Khối staff work in Swagger UI: a real headless Chromium logs in with Authorize and pulls the inbox."""

import shutil

import pytest

from tests.exchange import add_member, introduction, push
from tests.helpers import ACCOUNTS
from tests.live import ready, serve, stop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")]


@pytest.fixture
async def live():
    proc, base = serve(MX_LOG_LEVEL="ERROR", MX_WEBHOOK_WORKER="false")
    try:
        await ready(base, proc)
        yield base
    finally:
        stop(proc)


async def test_a_staff_member_logs_in_through_authorize_and_pulls_the_inbox(party, live, tmp_path):
    from playwright.async_api import async_playwright

    khoi = await party("khoi_clerk")
    card = await add_member(khoi, "ba-dinh")
    await push(khoi, introduction(card))
    spec = ACCOUNTS["ba_dinh_clerk"]
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
            page = await browser.new_page()
            await page.goto(f"{live}/docs")
            await page.get_by_role("button", name="Authorize").first.click()
            dialog = page.locator(".modal-ux")
            await dialog.locator("input#oauth_username").fill(spec.login)
            await dialog.locator("input#oauth_password").fill(spec.secret)
            await dialog.locator("button.authorize").click()
            await dialog.get_by_text("Logout").wait_for()  # Swagger UI shows Logout once the token is obtained
            await dialog.locator("button.btn-done").click()
            operation = page.locator(".opblock-get").filter(
                has=page.locator('.opblock-summary-path[data-path="/api/v1/notices/inbox"]')
            )
            await operation.locator(".opblock-summary").click()
            await operation.get_by_role("button", name="Try it out").click()
            await operation.get_by_role("button", name="Execute").click()
            response = operation.locator(".responses-table.live-responses-table")
            await response.locator("tbody .response-col_status").first.wait_for()
            status = (await response.locator("tbody .response-col_status").first.inner_text()).strip()
            body = await response.locator(".highlight-code").first.inner_text()
            await page.screenshot(path=str(tmp_path / "swagger-inbox.png"), full_page=True)
        finally:
            await browser.close()
    assert status == "200"
    assert card in body and "member.introduced" in body, body[:500]
