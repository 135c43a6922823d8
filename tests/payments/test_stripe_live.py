"""End to end against a live server: localstripe charges and delivers its signed webhooks to
Tollgate's dj-stripe endpoint over HTTP; the invoice ends succeeded, or failed with the reason."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
import stripe
from djstripe.models import Event, WebhookEventTrigger

from invoicing.signals import invoice_finalized
from payments import services
from payments.models import Payment, PaymentStatus
from tests.factories.payments import make_finalized_invoice

from .conftest import (
    CARD_DECLINED_ON_CHARGE,
    CARD_REQUIRES_AUTHENTICATION,
    LOCALSTRIPE_SECRET_KEY,
    localstripe_post,
    make_card,
)

# The live server writes from its own thread while the test reads: PostgreSQL (SQLite locks up).
pytestmark = [pytest.mark.stripe, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WEBHOOK_SECRET = "whsec_tollgate_live_0123456789"
WEBHOOK_ID = "tollgate-tests"
# Nothing listens on the discard port: where deliveries go once the test is over.
NOWHERE = "http://127.0.0.1:9/"


@pytest.fixture
def delivered_webhooks(stripe_api, live_server) -> Iterator[None]:
    """localstripe signs and POSTs its events to the live server's dj-stripe endpoint."""
    endpoint = services.stripe_webhook_endpoint_register(base_url=live_server.url, secret=WEBHOOK_SECRET)
    localstripe_post(stripe_api, f"/_config/webhooks/{WEBHOOK_ID}", {"url": endpoint.url, "secret": WEBHOOK_SECRET})
    yield
    localstripe_post(stripe_api, f"/_config/webhooks/{WEBHOOK_ID}", {"url": NOWHERE, "secret": WEBHOOK_SECRET})
    time.sleep(0.3)  # let a delivery already in progress finish before the database is flushed
    failures = list(WebhookEventTrigger.objects.exclude(exception="").values_list("exception", flat=True))
    assert failures == [], "webhooks failed on the live server"


def wait_for(condition: Callable[[], bool], *, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a webhook")
        time.sleep(0.1)


def processed_event(event_type: str, payment_intent_id: str) -> Event | None:
    for event in Event.objects.filter(type=event_type):
        if event.data["object"]["id"] == payment_intent_id and WebhookEventTrigger.objects.filter(
            event=event, processed=True
        ):
            return event
    return None


def finalize(invoice) -> Payment:
    invoice_finalized.send(sender=type(invoice), invoice_id=invoice.pk)
    return invoice.payments.get()


def test_success_arrives_by_webhook_after_3d_secure(delivered_webhooks, stripe_customer, stripe_api):
    """The attempt waits for the customer; only the webhook can tell Tollgate it then succeeded."""
    invoice = make_finalized_invoice(
        customer=stripe_customer(payment_method=make_card(CARD_REQUIRES_AUTHENTICATION)), total="64.00"
    )
    payment = finalize(invoice)
    assert payment.status == PaymentStatus.REQUIRES_ACTION

    # The customer completes 3-D Secure (localstripe's stand-in for Stripe.js).
    client_secret = stripe.PaymentIntent.retrieve(payment.provider_payment_id, api_key=LOCALSTRIPE_SECRET_KEY)[
        "client_secret"
    ]
    localstripe_post(
        stripe_api,
        f"/v1/payment_intents/{payment.provider_payment_id}/_authenticate",
        {"client_secret": client_secret, "success": "true"},
    )

    wait_for(lambda: Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED)
    invoice.refresh_from_db()
    assert invoice.payment_status == "succeeded"
    assert invoice.total_paid_amount == Decimal("64.00")
    # dj-stripe marks the webhook processed after our handler's transaction commits: wait for it.
    wait_for(lambda: processed_event("payment_intent.succeeded", payment.provider_payment_id) is not None)


def test_decline_ends_failed_with_the_reason_and_its_webhook_changes_nothing(delivered_webhooks, stripe_customer):
    invoice = make_finalized_invoice(
        customer=stripe_customer(payment_method=make_card(CARD_DECLINED_ON_CHARGE)), total="64.00"
    )
    payment = finalize(invoice)

    wait_for(lambda: processed_event("payment_intent.payment_failed", payment.provider_payment_id) is not None)
    payment.refresh_from_db()
    invoice.refresh_from_db()
    assert (payment.status, payment.failure_code, payment.failure_reason) == (
        PaymentStatus.FAILED,
        "card_declined",
        "Your card was declined.",
    )
    assert invoice.payment_status == "failed"


def test_success_and_its_webhook_count_the_money_once(delivered_webhooks, stripe_customer):
    invoice = make_finalized_invoice(customer=stripe_customer(), total="64.00")
    payment = finalize(invoice)
    assert payment.status == PaymentStatus.SUCCEEDED
    paid_at = payment.paid_at

    wait_for(lambda: processed_event("payment_intent.succeeded", payment.provider_payment_id) is not None)
    payment.refresh_from_db()
    invoice.refresh_from_db()
    assert payment.paid_at == paid_at
    assert invoice.total_paid_amount == Decimal("64.00")
    assert invoice.payment_status == "succeeded"
