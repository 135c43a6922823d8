"""Credit invoices of paid top-ups, as Lago has them (app/services/invoices/paid_credit_service.rb,
app/services/invoices/finalize_open_credit_service.rb, app/jobs/invoices/prepaid_credit_job.rb):

- without invoice_requires_successful_payment the credit invoice is finalized (numbered) at once
  and gets its PDF like any invoice; its credits settle when it is paid;
- with it, the invoice stays `open` (no number, nothing outstanding on the dashboard) while it is
  collected; once paid, its credits settle and it is finalized, issued and due that day.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from io import BytesIO

import pytest
from pypdf import PdfReader

from invoicing import analytics
from invoicing.models import Invoice, InvoiceStatus, InvoiceType
from invoicing.wallets import services
from invoicing.wallets.models import TransactionStatus, WalletTransaction
from payments.services import payment_create_manual
from tests.factories.customers import make_customer
from tests.factories.wallets import make_wallet

pytestmark = pytest.mark.django_db

D = Decimal


def _credit_invoice(customer) -> Invoice:
    return Invoice.objects.get(customer=customer, invoice_type=InvoiceType.CREDIT)


def test_a_credit_invoice_is_finalized_at_once_and_gets_its_pdf(django_capture_on_commit_callbacks):
    customer = make_customer(external_id="credit_pdf", currency="USD")
    with django_capture_on_commit_callbacks(execute=True):
        make_wallet(customer=customer, rate_amount="2", paid_credits="15", name="Prepaid")
    invoice = _credit_invoice(customer)
    assert invoice.status == InvoiceStatus.FINALIZED and invoice.finalized_at is not None
    assert invoice.number.endswith("-001") and invoice.total_due_amount == D("30")
    assert invoice.file, "the PDF task ran after commit (eager Celery)"
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(BytesIO(invoice.file.read())).pages).split())
    assert invoice.number in text and "USD 30.00" in text and "Prepaid" in text
    assert [e.kind for e in invoice.events.order_by("id")][:2] == ["created", "finalized"]


def test_a_top_up_that_requires_payment_keeps_its_invoice_open_until_paid(django_capture_on_commit_callbacks):
    customer = make_customer(external_id="credit_open", currency="USD")
    wallet = make_wallet(customer=customer, rate_amount="1", granted_credits="5")
    with django_capture_on_commit_callbacks(execute=True):
        services.wallet_transactions_create(
            wallet=wallet, actor="test", paid_credits="20", invoice_requires_successful_payment=True
        )
    invoice = _credit_invoice(customer)
    purchase = WalletTransaction.objects.get(invoice=invoice)
    assert (invoice.status, invoice.finalized_at, invoice.number) == (InvoiceStatus.OPEN, None, "TOL-DRAFT")
    assert purchase.status == TransactionStatus.PENDING and purchase.invoice_requires_successful_payment
    assert not invoice.file  # an open invoice has no document yet
    # Open is not outstanding: finance sees it once it is an invoice (Lago hides open invoices).
    assert analytics.outstanding_by_currency() == {}
    assert invoice.total_due_amount == D("20")  # ...but it can be collected
    wallet.refresh_from_db()
    assert wallet.credits_balance == D("5")

    with django_capture_on_commit_callbacks(execute=True):
        payment_create_manual(
            invoice_id=invoice.pk,
            amount_cents=2000,
            reference="card",
            paid_at=datetime.fromisoformat("2026-12-01T10:00+00:00"),
        )

    invoice.refresh_from_db()
    purchase.refresh_from_db()
    wallet.refresh_from_db()
    assert purchase.status == TransactionStatus.SETTLED
    assert (wallet.credits_balance, wallet.balance) == (D("25"), D("25"))
    assert invoice.status == InvoiceStatus.FINALIZED and invoice.payment_status == "succeeded"
    assert invoice.number.endswith("-001") and invoice.file
    # Issued and due the day it was paid (in the customer's zone, UTC here), as Lago re-dates it.
    assert invoice.issuing_date == invoice.payment_due_date == datetime.now(UTC).date()
    # The payment's receipt (payments) is written before the settlement finalizes the invoice.
    kinds = [e.kind for e in invoice.events.order_by("id")]
    assert kinds == ["created", "payment_receipt_created", "finalized", "pdf_generated"]
    assert invoice.events.get(kind="finalized").payload["on_payment"] is True


def test_an_open_credit_invoice_can_be_marked_paid_through_the_api(api):
    customer = make_customer(external_id="credit_open_api", currency="USD")
    make_wallet(customer=customer, rate_amount="1", paid_credits="10", invoice_requires_successful_payment=True)
    invoice = _credit_invoice(customer)
    assert invoice.status == InvoiceStatus.OPEN
    answer = api.put(f"/api/v1/invoices/{invoice.pk}", {"invoice": {"payment_status": "succeeded"}})
    assert answer.status_code == 200, answer.content
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.FINALIZED and invoice.number != "TOL-DRAFT"
    assert customer.wallets.get().credits_balance == D("10")


def test_a_failed_payment_fails_the_purchase_and_a_later_success_still_settles_it(api):
    # Lago: jobs/invoices/prepaid_credit_job.rb marks the purchase failed on a failed payment
    # (WalletTransactions::MarkAsFailedService); Wallets::ApplyPaidCreditsService settles any
    # purchase not settled yet when a payment succeeds.
    customer = make_customer(external_id="credit_failed", currency="USD")
    wallet = make_wallet(customer=customer, rate_amount="1", paid_credits="8")
    invoice = _credit_invoice(customer)
    purchase = WalletTransaction.objects.get(invoice=invoice)

    answer = api.put(f"/api/v1/invoices/{invoice.pk}", {"invoice": {"payment_status": "failed"}})
    assert answer.status_code == 200, answer.content
    purchase.refresh_from_db()
    assert purchase.status == TransactionStatus.FAILED and purchase.failed_at is not None
    wallet.refresh_from_db()
    assert wallet.credits_balance == 0

    answer = api.put(f"/api/v1/invoices/{invoice.pk}", {"invoice": {"payment_status": "succeeded"}})
    assert answer.status_code == 200, answer.content
    purchase.refresh_from_db()
    wallet.refresh_from_db()
    assert purchase.status == TransactionStatus.SETTLED
    assert (wallet.credits_balance, wallet.balance) == (D("8"), D("8"))
