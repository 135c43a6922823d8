"""The finance console in a real headless Chromium (Playwright), against the live test server:
log in, check the dashboard's figures against the analytics API, record a partial payment and
see the outstanding drop, void with a reason, export a CSV, and as a Finance Viewer see no
buttons and be refused on a direct POST. A full-page screenshot of each page is saved under
test-artifacts/console/ (gitignored)."""

from __future__ import annotations

import csv
import io
import os
import shutil
from importlib import import_module
from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = "/usr/bin/chromium"
IN_CI = bool(os.environ.get("CI"))
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "console"
PASSWORD = "console-browser-password-1"

pytestmark = [
    pytest.mark.browser,
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
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        context.set_default_timeout(15_000)
        yield context
        context.close()
        browser.close()


def _users():
    from django.apps import apps
    from django.contrib.auth.models import Group, User

    # Transactional tests flush the data migration's groups: make them again its own way.
    if not Group.objects.filter(name="Finance Manager").exists():
        import_module("payments.migrations.0005_finance_console_groups").create_groups(apps, None)
    for name, group in (("finance-manager", "Finance Manager"), ("finance-viewer", "Finance Viewer")):
        user = User.objects.create_user(name, f"{name}@tollgate.test", PASSWORD, is_staff=True)
        user.groups.add(Group.objects.get(name=group))


def _log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _figure(page, currency: str, label: str) -> str:
    return page.inner_text(f'section[data-currency="{currency}"] a[data-figure="{label}"]')


def test_month_end_in_the_console(live_server, browser_context):
    from django.utils import timezone

    from invoicing.models import Invoice, InvoiceEvent, InvoiceStatus
    from payments.models import Payment
    from tests.console.factories import plan, subscription, subscription_fee
    from tests.factories.customers import make_api_key
    from tests.factories.payments import make_finalized_invoice

    _users()
    month_start = timezone.localdate().replace(day=1)
    to_pay = subscription_fee(subscription("acme", plan("monthly", "monthly", 10000)), "1200", issued=month_start)
    to_void = make_finalized_invoice(customer=to_pay.customer, total="250.50", issuing_date=month_start)
    api_key = make_api_key()

    page = browser_context.new_page()
    _log_in(page, live_server, "finance-manager")
    _shot(page, "01-dashboard")
    assert _figure(page, "USD", "outstanding") == "USD 1,450.50"
    assert _figure(page, "USD", "mrr") == "USD 1,200.00"
    assert page.locator("svg.tollgate-chart").count() == 1

    # The dashboard's figures are the API's.
    api = browser_context.request
    headers = {"Authorization": f"Bearer {api_key.raw}"}
    mrr = api.get(f"{live_server.url}/api/v1/analytics/mrr?currency=USD&months=1", headers=headers).json()
    assert mrr["mrrs"][0]["amount_cents"] == 120000
    gross = api.get(f"{live_server.url}/api/v1/analytics/gross_revenue?currency=USD&months=1", headers=headers).json()
    invoiced = _figure(page, "USD", f"invoiced-this-month-{month_start:%b-%Y}".lower())
    assert invoiced == f"USD {gross['gross_revenues'][0]['amount_cents'] / 100:,.2f}" == "USD 1,450.50"

    # Record a partial payment through the form; the outstanding drops by as much.
    page.goto(f"{live_server.url}/admin/invoicing/invoice/{to_pay.pk}/change/")
    _shot(page, "02-invoice")
    page.click('a[data-action="record-payment"]')
    page.fill("#id_amount", "200.00")
    page.fill("#id_paid_on", f"{timezone.localdate():%Y-%m-%d}")
    page.fill("#id_reference", "WIRE-2026-001")
    _shot(page, "03-record-payment")
    page.click("input[type=submit][value=Continue]")
    assert "USD 1,000.00 will still be due" in page.inner_text("p.confirm")
    _shot(page, "04-record-payment-confirm")
    page.click("input[name=confirm]")
    page.wait_for_selector("ul.messagelist")
    assert "WIRE-2026-001" in page.inner_text("#invoice-payments")
    _shot(page, "05-invoice-with-payment")
    assert Payment.objects.get(invoice=to_pay).reference == "WIRE-2026-001"
    page.goto(f"{live_server.url}/admin/")
    assert _figure(page, "USD", "outstanding") == "USD 1,250.50"
    assert _figure(page, "USD", "collected-this-month") == "USD 200.00"

    # Void with a reason.
    page.goto(f"{live_server.url}/admin/invoicing/invoice/{to_void.pk}/change/")
    page.click('a[data-action="void"]')
    page.fill("#id_reason", "Sent to the wrong entity")
    _shot(page, "06-void-confirm")
    page.click("#confirm-action input[type=submit]")
    page.wait_for_selector("ul.messagelist")
    assert Invoice.objects.get(pk=to_void.pk).status == InvoiceStatus.VOIDED
    assert InvoiceEvent.objects.get(invoice=to_void, kind="void_reason").payload == {
        "reason": "Sent to the wrong entity"
    }
    page.goto(f"{live_server.url}/admin/")
    assert _figure(page, "USD", "outstanding") == "USD 1,000.00"
    _shot(page, "07-dashboard-after")

    # The invoice list with its per-currency totals, and its CSV export parsed.
    page.goto(f"{live_server.url}/admin/invoicing/invoice/?preset=unpaid")
    assert "USD 1,000.00" in page.inner_text("#currency-totals")
    _shot(page, "08-unpaid-invoices")
    with page.expect_download() as download:
        page.click("#csv-export")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(row["number"], row["total_paid_amount"]) for row in rows] == [(to_pay.number, "200.00")]
    page.goto(f"{live_server.url}/admin/console/aging/")
    _shot(page, "09-aging")

    # A credit note through the form: estimate, then create.
    page.goto(f"{live_server.url}/admin/invoicing/invoice/{to_pay.pk}/change/")
    page.click('a[data-action="credit-note"]')
    page.fill("#credit-note tbody input", "100.00")
    page.select_option("#id_reason", "order_change")
    page.click("input[name=estimate]")
    assert "USD 100.00" in page.inner_text("#credit-note-estimate")
    _shot(page, "11-credit-note-estimate")
    page.click("input[name=create]")
    page.wait_for_selector("ul.messagelist")
    assert "credit note of USD 100.00 created" in page.inner_text("ul.messagelist")
    _shot(page, "12-credit-note")

    # A billing run: preview, then run.
    from tests.factories.invoicing import subscribe, utc

    subscribe(plan=plan("run", "monthly", 4900), external_id="sub_browser_run", start=utc(2024, 1, 1))
    page.goto(f"{live_server.url}/admin/invoicing/invoice/billing-run/")
    page.fill("#id_at", "2024-02-01T12:00")
    page.click("input[name=preview]")
    assert "sub_browser_run" in page.inner_text("#billing-run-preview")
    _shot(page, "13-billing-run-preview")
    page.click("input[name=run]")
    assert "1 created" in page.inner_text("#billing-run-result")
    _shot(page, "14-billing-run-result")

    # A Finance Viewer sees the figures, no buttons, and a forged POST is refused.
    viewer = browser_context.browser.new_context(viewport={"width": 1280, "height": 900})
    viewer_page = viewer.new_page()
    _log_in(viewer_page, live_server, "finance-viewer")
    # 1,000.00 still due on the paid-in-part invoice (its credit note credits the customer's next
    # invoices) and the billing run's new 49.00 invoice.
    assert _figure(viewer_page, "USD", "outstanding") == "USD 1,049.00"
    viewer_page.goto(f"{live_server.url}/admin/invoicing/invoice/{to_pay.pk}/change/")
    _shot(viewer_page, "10-viewer-invoice")
    for action in ("record-payment", "void", "finalize", "regenerate-pdf"):
        assert viewer_page.locator(f'a[data-action="{action}"]').count() == 0
    token = viewer_page.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value") or ""
    cookies = {cookie["name"]: cookie["value"] for cookie in viewer.cookies()}
    forged = viewer.request.post(
        f"{live_server.url}/admin/console/invoices/{to_pay.pk}/record-payment/",
        form={
            "amount": "1",
            "paid_on": "2026-01-01",
            "reference": "x",
            "confirm": "1",
            "csrfmiddlewaretoken": token or cookies.get("csrftoken", ""),
        },
        headers={"Referer": live_server.url, "X-CSRFToken": cookies.get("csrftoken", "")},
    )
    assert forged.status == 403
    assert Payment.objects.filter(invoice=to_pay).count() == 1
    viewer.close()
