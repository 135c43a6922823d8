"""A wallet top-up paid on Stripe Checkout, settled through the Stripe webhook path (dj-stripe's
endpoint, the signature checked, the intent re-read from localstripe): the payment is recorded
once on the credit invoice and the purchased credits settle (Lago: jobs/invoices/prepaid_credit_job.rb).
localstripe has no Checkout sessions, so the test makes the PaymentIntent that Checkout would make,
with the metadata payments.wallet_checkout gives it."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlparse

import pytest
import stripe

from invoicing.models import Invoice, InvoiceStatus, InvoiceType
from invoicing.wallets.models import TransactionStatus, WalletTransaction
from payments.models import Payment, PaymentTrigger
from tests.factories.wallets import make_wallet

from .conftest import LOCALSTRIPE_SECRET_KEY
from .test_stripe_webhooks import WEBHOOK_SECRET, make_event, signed_post

pytestmark = pytest.mark.stripe


@pytest.fixture
def endpoint_path(stripe_api) -> str:
    from payments import services

    endpoint = services.stripe_webhook_endpoint_register(base_url="http://testserver", secret=WEBHOOK_SECRET)
    return urlparse(endpoint.url).path


def _checkout_intent(row: WalletTransaction, invoice: Invoice, *, stripe_customer_id: str) -> dict:
    intent = stripe.PaymentIntent.create(
        amount=int(invoice.total_amount * 100),
        currency=invoice.currency.lower(),
        customer=stripe_customer_id,
        payment_method="pm_card_visa",
        confirm=True,
        metadata={"invoice_id": str(invoice.pk), "wallet_transaction_id": str(row.pk)},
        api_key=LOCALSTRIPE_SECRET_KEY,
    )
    return intent.to_dict()


@pytest.mark.parametrize("requires_payment", [False, True])
def test_a_checkout_payment_settles_the_top_up_once(client, endpoint_path, stripe_customer, requires_payment):
    customer = stripe_customer(payment_method=None)
    wallet = make_wallet(
        customer=customer, rate_amount="0.5", paid_credits="50", invoice_requires_successful_payment=requires_payment
    )
    row = WalletTransaction.objects.get(wallet=wallet)
    invoice = Invoice.objects.get(customer=customer, invoice_type=InvoiceType.CREDIT)
    assert invoice.status == (InvoiceStatus.OPEN if requires_payment else InvoiceStatus.FINALIZED)
    intent = _checkout_intent(row, invoice, stripe_customer_id=customer.provider_customer_id)
    assert intent["status"] == "succeeded"
    event = make_event("payment_intent.succeeded", intent)

    assert signed_post(client, endpoint_path, event).status_code == 200
    # Stripe delivers again (a new event id for the same intent): nothing more is recorded.
    assert signed_post(client, endpoint_path, make_event("payment_intent.succeeded", intent)).status_code == 200

    payment = Payment.objects.get(invoice=invoice)
    assert (payment.trigger, payment.amount, payment.provider_payment_id) == (
        PaymentTrigger.CHECKOUT,
        Decimal("25.00"),
        intent["id"],
    )
    invoice.refresh_from_db()
    row.refresh_from_db()
    wallet.refresh_from_db()
    assert (invoice.status, invoice.payment_status, invoice.total_paid_amount) == (
        InvoiceStatus.FINALIZED,
        "succeeded",
        Decimal("25.00"),
    )
    assert row.status == TransactionStatus.SETTLED
    assert (wallet.credits_balance, wallet.balance) == (Decimal("50"), Decimal("25.00"))


def test_an_intent_naming_no_top_up_of_ours_is_ignored(client, endpoint_path, stripe_customer):
    customer = stripe_customer(payment_method=None)
    make_wallet(customer=customer, paid_credits="10")
    invoice = Invoice.objects.get(customer=customer, invoice_type=InvoiceType.CREDIT)
    intent = stripe.PaymentIntent.create(
        amount=1000,
        currency="usd",
        customer=customer.provider_customer_id,
        payment_method="pm_card_visa",
        confirm=True,
        metadata={"invoice_id": str(invoice.pk), "wallet_transaction_id": "00000000-0000-0000-0000-000000000000"},
        api_key=LOCALSTRIPE_SECRET_KEY,
    ).to_dict()
    assert signed_post(client, endpoint_path, make_event("payment_intent.succeeded", intent)).status_code == 200
    assert not Payment.objects.filter(invoice=invoice).exists()
