"""Stripe payments announced: a payment succeeding or failing through localstripe's webhook (as
Stripe signs it, through dj-stripe's endpoint) sends payment.succeeded / payment.failed,
invoice.payment_failure and invoice.payment_status_updated."""

from __future__ import annotations

import pytest

from invoicing.signals import invoice_finalized
from payments.models import PaymentStatus
from tests.factories.payments import make_finalized_invoice
from tests.payments import conftest as payments_conftest
from tests.payments import test_stripe_webhooks as stripe_webhooks
from tests.payments.conftest import CARD_REQUIRES_AUTHENTICATION, make_card
from tests.payments.test_stripe_webhooks import intent, make_event, signed_post
from tests.webhooks.conftest import register

# The payments tests' localstripe fixtures, used here unchanged.
localstripe_url = payments_conftest.localstripe_url
stripe_api = payments_conftest.stripe_api
stripe_customer = payments_conftest.stripe_customer
webhook_path = stripe_webhooks.webhook_path

pytestmark = [pytest.mark.stripe, pytest.mark.django_db]


@pytest.fixture
def waiting_payment(stripe_customer, django_capture_on_commit_callbacks):
    customer = stripe_customer(payment_method=make_card(CARD_REQUIRES_AUTHENTICATION))
    invoice = make_finalized_invoice(customer=customer, total="42.00")
    with django_capture_on_commit_callbacks(execute=True):
        invoice_finalized.send(sender=type(invoice), invoice_id=invoice.pk)
    payment = invoice.payments.get()
    assert payment.status == PaymentStatus.REQUIRES_ACTION
    return payment


def test_a_stripe_payment_succeeding(
    api, receiver, client, webhook_path, waiting_payment, django_capture_on_commit_callbacks
):
    register(api, receiver.url)
    event = make_event("payment_intent.succeeded", intent(waiting_payment.provider_payment_id, status="succeeded"))
    with django_capture_on_commit_callbacks(execute=True):
        assert signed_post(client, webhook_path, event).status_code == 200

    # Every succeeded payment gets its receipt (payments.receipts), announced in the same transaction.
    assert receiver.types() == ["payment.succeeded", "payment_receipt.created", "invoice.payment_status_updated"]
    assert receiver.requests[0].json["payment"]["lago_id"] == str(waiting_payment.pk)
    assert receiver.requests[0].json["payment"]["payment_provider_type"] == "stripe"
    assert receiver.requests[1].json["payment_receipt"]["payment"]["lago_id"] == str(waiting_payment.pk)
    assert receiver.requests[2].json["invoice"]["payment_status"] == "succeeded"


def test_a_stripe_payment_failing(
    api, receiver, client, webhook_path, waiting_payment, django_capture_on_commit_callbacks
):
    register(api, receiver.url)
    payload = intent(
        waiting_payment.provider_payment_id,
        status="requires_payment_method",
        last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds", "message": "No money."},
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            signed_post(client, webhook_path, make_event("payment_intent.payment_failed", payload)).status_code == 200
        )

    assert receiver.types() == ["payment.failed", "invoice.payment_failure", "invoice.payment_status_updated"]
    failure = receiver.requests[1].json["payment_provider_invoice_payment_error"]
    assert failure["lago_invoice_id"] == str(waiting_payment.invoice_id)
    assert failure["provider_error"] == {"message": "No money.", "error_code": "insufficient_funds"}
    assert receiver.requests[2].json["invoice"]["payment_status"] == "failed"
