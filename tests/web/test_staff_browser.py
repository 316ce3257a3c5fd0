"""The back office in Debian's Chromium: a staff member signs in with a password and a TOTP
code (computed here, as an authenticator app would), finds a customer by email, and the
audit log shows that read — in English and in Thai."""

from __future__ import annotations

import pytest

from faoyam.accounts.service import create_account
from tests.conftest import STRONG
from tests.staff.helpers import STAFF_PASSWORD, code, enrolled

pytestmark = [pytest.mark.browser]

CUSTOMER = "lamai@example.com"


@pytest.mark.req("SEC1", "R1")
async def test_staff_sign_in_find_a_customer_and_see_the_read_audited(ctx, live_server, browser, shoot):
    uid = await create_account(ctx, email=CUSTOMER, phone=None, country="TH", nickname="Lamai", password=STRONG)
    staff = await enrolled(ctx, "operator@operator.example", "admin")
    base = live_server.url
    context = await browser.new_context(locale="en-US")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # Signed out, the back office sends the browser to its own sign-in page.
    await page.goto(base + "/staff/customers")
    assert page.url.startswith(base + "/staff/signin?next=/staff/customers")
    await page.fill("input[name=email]", staff.email)
    await page.fill("input[name=password]", STAFF_PASSWORD)
    await page.fill("input[name=code]", "000000")
    await page.click("button[type=submit]:has-text('Sign in')")
    await page.wait_for_selector("[role=alert]")
    assert "not right" in await page.inner_text("[role=alert]")
    await page.fill("input[name=password]", STAFF_PASSWORD)
    await page.fill("input[name=code]", code(staff))
    await page.click("button[type=submit]:has-text('Sign in')")
    await page.wait_for_url(base + "/staff/customers")
    await shoot(page, "staff-01-customers")

    # Find the customer by the exact address.
    await page.fill("input[name=q]", CUSTOMER)
    await page.click("button[type=submit]:has-text('Find')")
    await page.wait_for_url(base + f"/staff/customers/{uid}")
    assert await page.inner_text("#customer-id") == uid
    assert CUSTOMER in await page.content()
    await shoot(page, "staff-02-customer")

    # The audit log shows the search and the read of the customer page, by this staff member.
    await page.click("a:has-text('Audit log')")
    await page.wait_for_url(base + "/staff/audit")
    view = page.locator("tr[data-action='customer.view']")
    assert await view.count() == 1
    row = await view.inner_text()
    assert staff.email in row and uid in row
    assert await page.locator("tr[data-action='customer.search']").count() == 1
    await shoot(page, "staff-03-audit")

    # The same page in Thai.
    await page.goto(base + "/staff/audit?lang=th")
    assert "บันทึกการตรวจสอบ" in await page.inner_text("h1")
    assert errors == []
    await context.close()
