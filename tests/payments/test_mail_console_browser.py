"""In Chromium (Playwright), against the live test server: an invoice e-mailed on finalization
(to aiosmtpd on loopback) and a dunning step show on the invoice's history; the campaign in the
admin. Screenshots under test-artifacts/console/."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from tests.console.test_console_browser import _log_in, _shot, _users, browser_context  # noqa: F401
from tests.console.test_console_browser import pytestmark as _browser_marks

pytestmark = _browser_marks


def test_emails_and_dunning_on_the_invoice_history(live_server, browser_context, smtp_server):  # noqa: F811
    from customers.models import Organization
    from invoicing import services
    from invoicing.models import InvoiceStatus, InvoiceType
    from payments.dunning import dunning_run
    from payments.models import DunningCampaign, DunningStep, PaymentRequest
    from tests.factories.credit_notes import make_invoice
    from tests.factories.customers import make_customer

    organization = Organization.current()
    organization.email = "billing@acme.test"
    organization.email_settings = ["invoice.finalized"]
    organization.save()
    customer = make_customer(external_id="browser_mail", email="ap@buyer.test")
    draft = make_invoice(
        customer=customer, status=InvoiceStatus.DRAFT, invoice_type=InvoiceType.ADD_ON, fees=[{"amount": "75.00"}]
    )
    invoice = services.invoice_finalize(invoice=draft, actor="test")
    today = timezone.now().date()
    type(invoice).objects.filter(pk=invoice.pk).update(payment_due_date=today - timedelta(days=4), payment_overdue=True)
    campaign = DunningCampaign.objects.create(code="default", name="Default reminders", is_default=True)
    for days in (3, 7, 14):
        DunningStep.objects.create(campaign=campaign, days_past_due=days, retry_card=days == 14)
    dunning_run(today=today)
    assert PaymentRequest.objects.count() == 1
    assert [got.subject for got in smtp_server.received] == [
        f"Your invoice from {organization.name} #{invoice.number}",
        f"Your overdue invoices from {organization.name}",
    ]
    _users()

    page = browser_context.new_page()
    _log_in(page, live_server, "finance-manager")
    page.goto(f"{live_server.url}/admin/invoicing/invoice/{invoice.pk}/change/")
    history = page.inner_text("body")
    for kind in ("email_queued", "email_sent", "payment_request_created", "dunning_step"):
        assert kind in history, kind
    _shot(page, "invoice-history-emails-dunning")
    page.goto(f"{live_server.url}/admin/payments/dunningcampaign/{campaign.pk}/change/")
    assert page.input_value("#id_steps-0-days_past_due") == "3"
    _shot(page, "dunning-campaign")
    page.goto(f"{live_server.url}/admin/invoicing/documentemail/")
    assert "ap@buyer.test" in page.inner_text("#result_list")
    _shot(page, "document-emails")
