"""Stripe webhooks through dj-stripe's endpoint: signature checked, each event applied once, events
out of order never move a payment back. Events are signed here as Stripe signs them, about
PaymentIntents that exist in localstripe (dj-stripe re-reads each one from the API)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlparse

import pytest
import stripe
from djstripe.models import Event, WebhookEventTrigger

from invoicing.signals import invoice_finalized
from payments import services
from payments.models import PaymentStatus
from tests.factories.payments import make_finalized_invoice

from .conftest import CARD_REQUIRES_AUTHENTICATION, LOCALSTRIPE_SECRET_KEY, make_card

pytestmark = pytest.mark.stripe

WEBHOOK_SECRET = "whsec_tollgate_tests_0123456789"


@pytest.fixture
def webhook_path(stripe_api) -> str:
    endpoint = services.stripe_webhook_endpoint_register(base_url="http://testserver", secret=WEBHOOK_SECRET)
    return urlparse(endpoint.url).path


def signed_post(client, path: str, event: dict, *, secret: str = WEBHOOK_SECRET):
    body = json.dumps(event)
    timestamp = int(time.time())
    signature = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return client.post(
        path, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=f"t={timestamp},v1={signature}"
    )


def make_event(event_type: str, payment_intent: dict, *, event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": payment_intent},
    }


def intent(pi_id: str, **changes) -> dict:
    data = stripe.PaymentIntent.retrieve(pi_id, api_key=LOCALSTRIPE_SECRET_KEY).to_dict()
    data.update(changes)
    return data


@pytest.fixture
def waiting_payment(stripe_customer, django_capture_on_commit_callbacks):
    """A finalized invoice whose attempt waits for 3-D Secure (intent in requires_action)."""
    customer = stripe_customer(payment_method=make_card(CARD_REQUIRES_AUTHENTICATION))
    invoice = make_finalized_invoice(customer=customer, total="42.00")
    with django_capture_on_commit_callbacks(execute=True):
        invoice_finalized.send(sender=type(invoice), invoice_id=invoice.pk)
    payment = invoice.payments.get()
    assert payment.status == PaymentStatus.REQUIRES_ACTION
    return payment


def test_requires_action_event_for_an_attempt_recorded_before_its_intent_id(client, webhook_path, waiting_payment):
    """The webhook can arrive before the create call returned: the metadata finds the attempt."""
    pi_id = waiting_payment.provider_payment_id
    type(waiting_payment).objects.filter(pk=waiting_payment.pk).update(
        provider_payment_id="", status=PaymentStatus.PENDING, next_action=None
    )

    response = signed_post(client, webhook_path, make_event("payment_intent.requires_action", intent(pi_id)))

    assert response.status_code == 200
    waiting_payment.refresh_from_db()
    assert waiting_payment.status == PaymentStatus.REQUIRES_ACTION
    assert waiting_payment.provider_payment_id == pi_id
    assert waiting_payment.next_action["type"] == "use_stripe_sdk"


def test_succeeded_event_settles_the_invoice(client, webhook_path, waiting_payment):
    event = make_event("payment_intent.succeeded", intent(waiting_payment.provider_payment_id, status="succeeded"))

    assert signed_post(client, webhook_path, event).status_code == 200

    waiting_payment.refresh_from_db()
    invoice = waiting_payment.invoice
    invoice.refresh_from_db()
    assert waiting_payment.status == PaymentStatus.SUCCEEDED
    # Dated by the event (when Stripe saw the success), not by when the intent was created.
    assert waiting_payment.paid_at == datetime.fromtimestamp(event["created"], tz=UTC)
    assert invoice.payment_status == "succeeded"
    assert invoice.total_paid_amount == Decimal("42.00")


def test_payment_failed_event_records_the_reason(client, webhook_path, waiting_payment):
    payload = intent(
        waiting_payment.provider_payment_id,
        status="requires_payment_method",
        last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds", "message": "No money."},
    )

    assert signed_post(client, webhook_path, make_event("payment_intent.payment_failed", payload)).status_code == 200

    waiting_payment.refresh_from_db()
    assert (waiting_payment.status, waiting_payment.failure_code, waiting_payment.failure_reason) == (
        PaymentStatus.FAILED,
        "insufficient_funds",
        "No money.",
    )
    waiting_payment.invoice.refresh_from_db()
    assert waiting_payment.invoice.payment_status == "failed"


def test_same_event_twice_changes_nothing(client, webhook_path, waiting_payment):
    event = make_event("payment_intent.succeeded", intent(waiting_payment.provider_payment_id, status="succeeded"))
    assert signed_post(client, webhook_path, event).status_code == 200
    waiting_payment.refresh_from_db()
    first = (waiting_payment.status, waiting_payment.paid_at, waiting_payment.updated_at)

    assert signed_post(client, webhook_path, event).status_code == 200

    waiting_payment.refresh_from_db()
    assert (waiting_payment.status, waiting_payment.paid_at, waiting_payment.updated_at) == first
    assert Event.objects.filter(id=event["id"]).count() == 1
    assert WebhookEventTrigger.objects.filter(valid=True, processed=True).count() == 2
    waiting_payment.invoice.refresh_from_db()
    assert waiting_payment.invoice.total_paid_amount == Decimal("42.00")


def test_the_same_news_in_another_event_changes_nothing_either(client, webhook_path, waiting_payment):
    """Stripe may send two events with the same content (different ids): the ledger is idempotent."""
    payload = intent(waiting_payment.provider_payment_id, status="succeeded")
    for _ in range(2):
        assert signed_post(client, webhook_path, make_event("payment_intent.succeeded", payload)).status_code == 200

    waiting_payment.invoice.refresh_from_db()
    assert waiting_payment.invoice.total_paid_amount == Decimal("42.00")


def test_events_out_of_order_never_move_a_succeeded_payment_back(client, webhook_path, waiting_payment):
    pi_id = waiting_payment.provider_payment_id
    succeeded = make_event("payment_intent.succeeded", intent(pi_id, status="succeeded"))
    late_requires_action = make_event("payment_intent.requires_action", intent(pi_id, status="requires_action"))
    late_failed = make_event(
        "payment_intent.payment_failed",
        intent(pi_id, status="requires_payment_method", last_payment_error={"code": "card_declined"}),
    )
    late_processing = make_event("payment_intent.processing", intent(pi_id, status="processing"))

    for event in (succeeded, late_requires_action, late_failed, late_processing):
        assert signed_post(client, webhook_path, event).status_code == 200

    waiting_payment.refresh_from_db()
    assert waiting_payment.status == PaymentStatus.SUCCEEDED
    assert waiting_payment.failure_code == ""
    waiting_payment.invoice.refresh_from_db()
    assert waiting_payment.invoice.payment_status == "succeeded"


def test_a_late_success_after_a_failure_wins(client, webhook_path, waiting_payment):
    pi_id = waiting_payment.provider_payment_id
    failed = make_event(
        "payment_intent.payment_failed",
        intent(pi_id, status="requires_payment_method", last_payment_error={"code": "card_declined"}),
    )
    succeeded = make_event("payment_intent.succeeded", intent(pi_id, status="succeeded"))

    for event in (failed, succeeded):
        assert signed_post(client, webhook_path, event).status_code == 200

    waiting_payment.refresh_from_db()
    assert waiting_payment.status == PaymentStatus.SUCCEEDED


def test_bad_signature_is_refused_and_changes_nothing(client, webhook_path, waiting_payment):
    event = make_event("payment_intent.succeeded", intent(waiting_payment.provider_payment_id, status="succeeded"))

    response = signed_post(client, webhook_path, event, secret="whsec_someone_else")
    unsigned = client.post(webhook_path, data=json.dumps(event), content_type="application/json")

    assert response.status_code == 400
    assert unsigned.status_code == 400
    waiting_payment.refresh_from_db()
    assert waiting_payment.status == PaymentStatus.REQUIRES_ACTION
    assert not Event.objects.filter(id=event["id"]).exists()


def test_intents_of_others_are_ignored(client, webhook_path, stripe_customer):
    customer = stripe_customer()
    foreign = stripe.PaymentIntent.create(
        amount=500,
        currency="usd",
        customer=customer.provider_customer_id,
        payment_method=stripe.Customer.retrieve(customer.provider_customer_id, api_key=LOCALSTRIPE_SECRET_KEY)[
            "invoice_settings"
        ]["default_payment_method"],
        confirm=True,
        metadata={"order": "not-tollgate"},
        api_key=LOCALSTRIPE_SECRET_KEY,
    )

    response = signed_post(client, webhook_path, make_event("payment_intent.succeeded", intent(foreign["id"])))

    assert response.status_code == 200
    assert not type(customer).objects.filter(invoices__payments__isnull=False).exists()


def test_webhook_endpoint_registration_is_idempotent(stripe_api):
    first = services.stripe_webhook_endpoint_register(base_url="https://billing.example.com/", secret="whsec_a")
    again = services.stripe_webhook_endpoint_register(base_url="https://billing.example.com", secret="whsec_a")

    assert first.pk == again.pk
    assert again.url == f"https://billing.example.com/stripe/webhook/{first.djstripe_uuid}/"
    assert again.djstripe_owner_account_id == "acct_1TollgateTests"
    with pytest.raises(services.PaymentError):
        services.stripe_webhook_endpoint_register(base_url="https://billing.example.com", secret="")
