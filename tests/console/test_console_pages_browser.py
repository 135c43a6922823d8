"""The console's newer pages in a real headless Chromium (Playwright) against the live test
server: the events browser (filter by customer in its box, unmatched events with their reason),
a customer's statement of account (running balance, PDF download) and a draft's PDF preview.
Full-page screenshots go to test-artifacts/console/ (gitignored), as the other browser tests."""

from __future__ import annotations

import io
import os
from datetime import UTC, date, datetime

import pytest
from pypdf import PdfReader

from tests.console.test_console_browser import CHROMIUM, IN_CI, _log_in, _shot, _users

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not IN_CI,
        reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium; CI installs it in .ci/run)",
    ),
]


def _pdf_text(data: bytes) -> str:
    return " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages).split())


def test_events_browser_statement_and_draft_preview(live_server, browser_context):
    from invoicing import services as invoicing_services
    from invoicing.models import Invoice, InvoiceStatus
    from payments.services import payment_create_manual
    from tests.console.factories import plan, subscription, subscription_fee
    from tests.factories.metrics import make_event, make_metric

    _users()
    make_metric(code="calls")
    acme = subscription("acme", plan("monthly", "monthly", 10000))
    subscription("globex", plan("other", "monthly", 5000))
    make_event(
        transaction_id="tx_acme_1",
        external_subscription_id=acme.external_id,
        code="calls",
        timestamp=datetime(2026, 5, 10, 8, tzinfo=UTC),
    )
    make_event(
        transaction_id="tx_globex_1",
        external_subscription_id="sub_globex_other",
        code="calls",
        timestamp=datetime(2026, 5, 11, 8, tzinfo=UTC),
    )
    make_event(
        transaction_id="tx_typo",
        external_subscription_id=acme.external_id,
        code="cals",
        timestamp=datetime(2026, 5, 12, 8, tzinfo=UTC),
    )
    first = subscription_fee(acme, "100", issued=date(2026, 5, 1))
    payment_create_manual(
        invoice_id=first.pk, amount_cents=4000, reference="wire 7", paid_at=datetime(2026, 5, 20, 9, tzinfo=UTC)
    )
    voided = subscription_fee(acme, "30", issued=date(2026, 6, 1))
    invoicing_services.invoice_void(invoice=voided, actor="test", now=datetime(2026, 6, 2, 9, tzinfo=UTC))
    draft = subscription_fee(acme, "100", issued=date(2026, 7, 1), status=InvoiceStatus.DRAFT)

    page = browser_context.new_page()
    _log_in(page, live_server, "finance-viewer")

    # Events: type the customer in its box, press Enter; only acme's events are listed.
    page.goto(f"{live_server.url}/admin/metrics/event/")
    page.fill('form.tollgate-input-filter input[name="customer"]', "acme")
    page.press('form.tollgate-input-filter input[name="customer"]', "Enter")
    page.wait_for_url("**customer=acme**")
    listed = page.inner_text("#result_list")
    assert "tx_acme_1" in listed and "tx_typo" in listed and "tx_globex_1" not in listed
    _shot(page, "events-by-customer")

    page.goto(f"{live_server.url}/admin/metrics/unmatchedevent/")
    row = page.locator("#result_list tr", has_text="tx_typo")
    assert "No live billable metric has this code." in row.inner_text()
    _shot(page, "unmatched-events")

    # Statement: 100.00 invoiced, 40.00 paid, 30.00 invoiced and voided: 60.00 owed.
    page.goto(f"{live_server.url}/admin/console/customers/{acme.customer_id}/")
    page.click("#customer-statement")
    page.wait_for_selector("#statement-USD")
    assert page.inner_text("#statement-USD .closing") == "USD 60.00"
    balances = page.locator("#statement-USD tr.line td:last-child").all_inner_texts()
    assert balances == ["USD 100.00", "USD 60.00", "USD 90.00", "USD 60.00"]
    _shot(page, "statement")
    with page.expect_download() as download_info:
        page.evaluate(
            "url => { const a = document.createElement('a'); a.href = url; a.download = 'statement.pdf';"
            " document.body.appendChild(a); a.click(); }",
            page.get_attribute("#statement-pdf", "href"),
        )
    text = _pdf_text(open(download_info.value.path(), "rb").read())
    assert "Statement of account" in text and "USD 60.00" in text

    # A draft's preview: a PDF marked DRAFT, nothing stored.
    page.goto(f"{live_server.url}/admin/invoicing/invoice/{draft.pk}/change/")
    preview = page.locator("a.invoice-action", has_text="Preview PDF")
    _shot(page, "draft-invoice-with-preview")
    answer = browser_context.request.get(live_server.url + preview.get_attribute("href"))
    assert answer.headers["content-type"] == "application/pdf"
    assert "DRAFT" in _pdf_text(answer.body())
    assert not Invoice.objects.get(pk=draft.pk).file
