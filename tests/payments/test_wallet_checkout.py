"""A wallet top-up paid on Stripe Checkout, settled through the Stripe webhook path (dj-stripe's
endpoint, the signature checked, the intent re-read from localstripe): the payment is recorded
once on the credit invoice and the purchased credits settle (Lago: jobs/invoices/prepaid_credit_job.rb).
The link is the top-up's payment_url (payments.wallet_checkout, through payments.checkout, the one
Checkout path); localstripe has no Checkout, so the customer's payment is a PaymentIntent
confirmed with the session's payment_intent_data (its `tollgate_checkout` marker, the invoice and
the wallet transaction), as Checkout makes it (tests/portal/test_checkout.py)."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlparse

import pytest
import stripe

from invoicing.models import Invoice, InvoiceStatus, InvoiceType
from invoicing.wallets.models import TransactionStatus, WalletTransaction
from payments.models import Payment, PaymentTrigger
from tests.factories.wallets import make_wallet
from tests.portal.test_checkout import pay_as_checkout_would, session_of

from .conftest import LOCALSTRIPE_SECRET_KEY
from .test_stripe_webhooks import WEBHOOK_SECRET, make_event, signed_post

pytestmark = pytest.mark.stripe


@pytest.fixture
def endpoint_path(stripe_api) -> str:
    from payments import services

    endpoint = services.stripe_webhook_endpoint_register(base_url="http://testserver", secret=WEBHOOK_SECRET)
    return urlparse(endpoint.url).path


def _pay_on_checkout(api, row: WalletTransaction) -> dict:
    answer = api.post(f"/api/v1/wallet_transactions/{row.pk}/payment_url")
    assert answer.status_code == 200, answer.json()
    session = session_of(answer.json()["wallet_transaction_payment_details"]["payment_url"])
    metadata = session["_request"]["payment_intent_data"]["metadata"]
    assert (metadata["tollgate_checkout"], metadata["wallet_transaction_id"]) == ("invoice", str(row.pk))
    return pay_as_checkout_would(session)


@pytest.mark.parametrize("requires_payment", [False, True])
def test_a_checkout_payment_settles_the_top_up_once(api, client, endpoint_path, stripe_customer, requires_payment):
    customer = stripe_customer(payment_method=None)
    wallet = make_wallet(
        customer=customer, rate_amount="0.5", paid_credits="50", invoice_requires_successful_payment=requires_payment
    )
    row = WalletTransaction.objects.get(wallet=wallet)
    invoice = Invoice.objects.get(customer=customer, invoice_type=InvoiceType.CREDIT)
    assert invoice.status == (InvoiceStatus.OPEN if requires_payment else InvoiceStatus.FINALIZED)
    intent = _pay_on_checkout(api, row)
    assert intent["amount"] == 2500  # 50 credits at 0.5
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


def test_an_intent_without_the_checkout_marker_is_not_ours(client, endpoint_path, stripe_customer):
    # Only what Checkout makes from our session (the `tollgate_checkout` marker) or our own
    # attempts are applied: an intent that merely names one of our invoices records nothing.
    customer = stripe_customer(payment_method=None)
    make_wallet(customer=customer, paid_credits="10")
    invoice = Invoice.objects.get(customer=customer, invoice_type=InvoiceType.CREDIT)
    row = WalletTransaction.objects.get(invoice=invoice)
    intent = stripe.PaymentIntent.create(
        amount=1000,
        currency="usd",
        customer=customer.provider_customer_id,
        payment_method="pm_card_visa",
        confirm=True,
        metadata={"invoice_id": str(invoice.pk), "wallet_transaction_id": str(row.pk)},
        api_key=LOCALSTRIPE_SECRET_KEY,
    ).to_dict()
    assert signed_post(client, endpoint_path, make_event("payment_intent.succeeded", intent)).status_code == 200
    assert not Payment.objects.filter(invoice=invoice).exists()
    row.refresh_from_db()
    assert row.status == TransactionStatus.PENDING
