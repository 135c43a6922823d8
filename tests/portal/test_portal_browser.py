"""The customer portal in a real headless Chromium (Playwright) with JavaScript OFF, against the
live test server: the link from lago-python-client's customers.portal_url, the page's documents
and usage, keyboard access (skip link, labelled fields), a refused and then a saved edit of the
billing details, Pay now to Stripe Checkout, and the invoice shown paid once Stripe's webhook
settled it. Full-page screenshots are saved under test-artifacts/portal/ (gitignored)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = "/usr/bin/chromium"
IN_CI = bool(os.environ.get("CI"))
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "portal"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.stripe,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not IN_CI,
        reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium; CI installs it in .ci/run)",
    ),
]


@pytest.fixture
def browser_context(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM) or shutil.which("chromium"), "CI must install chromium (.ci/run)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        # No JavaScript: the portal must work with plain links and forms.
        context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
        context.set_default_timeout(15_000)
        yield context
        context.close()
        browser.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_customer_uses_the_portal(live_server, browser_context, stripe_customer, settings):
    from django.test import Client as DjangoClient
    from django.utils import timezone
    from lago_python_client.client import Client

    from invoicing.models import Invoice
    from tests.factories.customers import make_api_key
    from tests.factories.invoicing import events, subscribe, utc
    from tests.factories.payments import make_finalized_invoice
    from tests.factories.plans import make_plan, standard_charge
    from tests.factories.wallets import make_wallet
    from tests.payments.test_stripe_webhooks import WEBHOOK_SECRET, make_event, signed_post
    from tests.portal.test_checkout import pay_as_checkout_would, session_of

    settings.MEDIA_ROOT = ARTIFACTS / "media"
    customer = stripe_customer(payment_method=None, external_id="acme", name="Acme Robotics")
    paid = make_finalized_invoice(customer=customer, total="80.00", payment_status="succeeded")
    Invoice.objects.filter(pk=paid.pk).update(total_paid_amount=paid.total_amount)
    due = make_finalized_invoice(customer=customer, total="1234.50")
    make_wallet(customer=customer, name="Prepaid", granted_credits="25")
    now = timezone.now()
    start = utc(now.year, now.month, 1)
    plan = make_plan(code="metered", name="Metered", amount_cents=1000, charges=[standard_charge(amount="0.05")])
    events(subscribe(plan=plan, customer=customer, external_id="sub_acme", start=start), [start] * 7)
    lago = Client(api_key=make_api_key().raw, api_url=live_server.url)

    url = lago.customers.portal_url("acme")

    assert url.startswith(live_server.url + "/portal/")
    page = browser_context.new_page()
    page.goto(url)
    assert page.locator("h1").inner_text() == "Billing for Acme Robotics"
    assert [h.inner_text() for h in page.locator("h2").all()] == [
        "Invoices",
        "Credit notes",
        "Current usage",
        "Prepaid credits",
        "Billing details",
    ]
    row = page.locator("tr", has=page.locator(f"th:text-is('{due.number}')"))
    assert "USD 1,234.50" in row.inner_text()
    assert "Due" in row.inner_text()
    assert page.locator("tr", has=page.locator(f"th:text-is('{paid.number}')")).locator(".badge").inner_text() == "Paid"
    # 7 API calls x 0.05 = 0.35 so far this month.
    assert "USD 0.35" in page.locator("section[aria-labelledby=usage-title]").inner_text()
    # Keyboard: the first Tab reaches the skip link; every field has a label.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for field in page.locator("form input[type=text], form input[type=email]").all():
        field_id = field.get_attribute("id")
        assert page.locator(f"label[for='{field_id}']").count() == 1, field_id
    _shot(page, "01-portal")

    page.fill("#id_email", "not an address")
    page.fill("#id_city", "Lyon")
    page.click("text=Save billing details")
    assert page.locator("[role=alert]").is_visible()
    assert page.locator("#id_email").get_attribute("aria-invalid") == "true"
    assert "valid e-mail" in page.locator("#error_email").inner_text()
    _shot(page, "02-billing-details-refused")

    page.fill("#id_email", "ap@acme.test")
    page.click("text=Save billing details")
    assert page.locator("[role=status]").inner_text() == "Your billing details were saved."
    assert page.input_value("#id_city") == "Lyon"
    customer.refresh_from_db()
    assert (customer.email, customer.city) == ("ap@acme.test", "Lyon")
    _shot(page, "03-billing-details-saved")

    page.get_by_role("button", name=f"Pay invoice {due.number} now (USD 1,234.50)").click()
    # Off to Stripe Checkout (localstripe has no Checkout page: the emulated session's URL).
    page.wait_for_url("**/checkout/cs_test_*")
    checkout_url = page.url
    due.refresh_from_db()
    assert due.payment_status == "pending"  # leaving for Stripe pays nothing

    # The customer pays at Stripe; Stripe's webhook (and nothing else) settles the invoice.
    from payments import services

    endpoint = services.stripe_webhook_endpoint_register(base_url="http://testserver", secret=WEBHOOK_SECRET)
    intent = pay_as_checkout_would(session_of(checkout_url))
    from urllib.parse import urlparse

    assert (
        signed_post(
            DjangoClient(), urlparse(endpoint.url).path, make_event("payment_intent.succeeded", intent)
        ).status_code
        == 200
    )
    page.goto(url)
    assert page.locator("tr", has=page.locator(f"th:text-is('{due.number}')")).locator(".badge").inner_text() == "Paid"
    assert page.get_by_role("button", name="Pay now").count() == 0
    _shot(page, "04-paid")

    page.goto(url[:-3] + "xx/")
    assert page.locator("h1").inner_text() == "This link is not valid"
    _shot(page, "05-refused")
