"""Stripe Checkout: POST /invoices/{id}/payment_url and /customers/{id}/checkout_url (Lago's shapes:
V1::PaymentProviders::InvoicePaymentSerializer and CustomerCheckoutSerializer), and settlement by
Stripe's webhook alone (the link and the page never mark anything paid).

localstripe has no Checkout: tests/payments/localstripe_server.py answers the session calls in
Stripe's documented shape and keeps what was asked; the customer's payment is a real localstripe
PaymentIntent confirmed with the session's payment_intent_data, as Checkout would, then Stripe's
signed `payment_intent.succeeded` reaches dj-stripe's endpoint.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe

from payments.models import PaymentStatus, PaymentTrigger
from tests.factories.customers import make_customer
from tests.factories.payments import make_finalized_invoice
from tests.payments.conftest import LOCALSTRIPE_SECRET_KEY
from tests.payments.test_stripe_webhooks import WEBHOOK_SECRET, make_event, signed_post

pytestmark = [pytest.mark.stripe, pytest.mark.django_db]


@pytest.fixture
def webhook_path(stripe_api) -> str:
    from urllib.parse import urlparse

    from payments import services

    endpoint = services.stripe_webhook_endpoint_register(base_url="http://testserver", secret=WEBHOOK_SECRET)
    return urlparse(endpoint.url).path


def session_of(url: str) -> dict:
    session_id = url.rsplit("/", 1)[-1]
    return stripe.checkout.Session.retrieve(session_id, api_key=LOCALSTRIPE_SECRET_KEY).to_dict()


def pay_as_checkout_would(session: dict) -> dict:
    """The customer pays on the page: Checkout confirms a PaymentIntent with the session's data."""
    asked = session["_request"]
    line = asked["line_items"][0] if isinstance(asked["line_items"], dict) else asked["line_items"][0]
    intent = stripe.PaymentIntent.create(
        amount=int(line["price_data"]["unit_amount"]),
        currency=line["price_data"]["currency"],
        customer=session["customer"],
        payment_method="pm_card_visa",
        confirm=True,
        metadata=asked["payment_intent_data"]["metadata"],
        api_key=LOCALSTRIPE_SECRET_KEY,
    )
    assert intent["status"] == "succeeded"
    return intent.to_dict()


def test_payment_url_is_a_checkout_session_for_what_is_due(api, stripe_customer):
    customer = stripe_customer(payment_method=None, external_id="pay-me")
    invoice = make_finalized_invoice(customer=customer, total="12.34", total_paid_amount=Decimal("2.00"))

    response = api.post(f"/api/v1/invoices/{invoice.pk}/payment_url")

    assert response.status_code == 200, response.content
    details = response.json()["invoice_payment_details"]
    assert details == {
        "lago_customer_id": str(customer.pk),
        "external_customer_id": "pay-me",
        "payment_provider": "stripe",
        "lago_invoice_id": str(invoice.pk),
        "payment_url": details["payment_url"],
    }
    session = session_of(details["payment_url"])
    asked = session["_request"]
    assert (session["mode"], session["customer"]) == ("payment", customer.provider_customer_id)
    line = asked["line_items"][0]
    # 12.34 invoiced, 2.00 paid: 10.34 due, 1034 cents.
    assert (line["quantity"], line["price_data"]["unit_amount"], line["price_data"]["currency"]) == ("1", "1034", "usd")
    assert asked["payment_intent_data"]["metadata"]["invoice_id"] == str(invoice.pk)
    assert asked["payment_intent_data"]["metadata"]["tollgate_checkout"] == "invoice"
    assert asked["success_url"] == "https://www.getlago.com/"
    invoice.refresh_from_db()
    assert (invoice.payment_status, invoice.payments.count()) == ("pending", 0)


def test_a_zero_decimal_currency_is_sent_in_whole_yen(api, stripe_customer):
    invoice = make_finalized_invoice(
        customer=stripe_customer(payment_method=None, currency="JPY"), currency="JPY", total="1234"
    )
    url = api.post(f"/api/v1/invoices/{invoice.pk}/payment_url").json()["invoice_payment_details"]["payment_url"]
    assert session_of(url)["_request"]["line_items"][0]["price_data"]["unit_amount"] == "1234"


def test_only_stripes_webhook_settles_a_checkout_payment(api, client, webhook_path, stripe_customer):
    invoice = make_finalized_invoice(customer=stripe_customer(payment_method=None), total="42.00")
    url = api.post(f"/api/v1/invoices/{invoice.pk}/payment_url").json()["invoice_payment_details"]["payment_url"]
    intent = pay_as_checkout_would(session_of(url))
    invoice.refresh_from_db()
    assert invoice.payment_status == "pending"  # paid at Stripe, not yet told

    event = make_event("payment_intent.succeeded", intent)
    assert signed_post(client, webhook_path, event).status_code == 200
    # The same PaymentIntent reported again (a new event id): still one payment.
    assert signed_post(client, webhook_path, make_event("payment_intent.succeeded", intent)).status_code == 200

    invoice.refresh_from_db()
    payment = invoice.payments.get()
    assert (payment.status, payment.trigger, payment.amount, payment.attempt) == (
        PaymentStatus.SUCCEEDED,
        PaymentTrigger.CHECKOUT,
        Decimal("42.00"),
        1,
    )
    assert payment.provider_payment_id == intent["id"]
    assert (invoice.payment_status, invoice.total_paid_amount) == ("succeeded", Decimal("42.00"))
    again = api.post(f"/api/v1/invoices/{invoice.pk}/payment_url")
    assert again.status_code == 422
    assert again.json()["error_details"] == {"base": ["invalid_invoice_status_or_payment_status"]}


def test_a_declined_card_on_the_page_records_nothing(client, webhook_path, stripe_customer, api):
    invoice = make_finalized_invoice(customer=stripe_customer(payment_method=None), total="5.00")
    url = api.post(f"/api/v1/invoices/{invoice.pk}/payment_url").json()["invoice_payment_details"]["payment_url"]
    intent = {**pay_as_checkout_would(session_of(url)), "status": "requires_payment_method"}

    assert signed_post(client, webhook_path, make_event("payment_intent.payment_failed", intent)).status_code == 200

    invoice.refresh_from_db()
    assert (invoice.payment_status, invoice.payments.count()) == ("pending", 0)


@pytest.mark.parametrize(
    ("case", "status", "details"),
    [
        ("draft", 422, {"base": ["invalid_invoice_status_or_payment_status"]}),
        ("manual", 422, {"base": ["no_linked_payment_provider"]}),
    ],
)
def test_payment_url_refusals(api, stripe_api, case, status, details):
    provider = "manual" if case == "manual" else "stripe"
    invoice = make_finalized_invoice(
        customer=make_customer(external_id=f"refused-{case}", payment_provider=provider),
        status="draft" if case == "draft" else "finalized",
    )
    response = api.post(f"/api/v1/invoices/{invoice.pk}/payment_url")
    assert response.status_code == status
    assert response.json()["error_details"] == details


def test_payment_url_without_stripe_configured_is_a_clear_422(api, settings):
    settings.STRIPE_TEST_SECRET_KEY = ""
    invoice = make_finalized_invoice(customer=make_customer(external_id="no-key", payment_provider="stripe"))
    response = api.post(f"/api/v1/invoices/{invoice.pk}/payment_url")
    assert (response.status_code, response.json()["code"]) == (422, "payment_provider_not_configured")


def test_unknown_invoice_is_404(api):
    response = api.post("/api/v1/invoices/8c3f1f4e-6a7c-4c1e-9d8e-2b0f6f1e0a11/payment_url")
    assert (response.status_code, response.json()["code"]) == (404, "invoice_not_found")


def test_checkout_url_opens_checkout_in_setup_mode(api, stripe_customer):
    customer = stripe_customer(payment_method=None, external_id="save-card")

    response = api.post("/api/v1/customers/save-card/checkout_url")

    assert response.status_code == 200, response.content
    body = response.json()["customer"]
    assert (body["lago_customer_id"], body["external_customer_id"], body["payment_provider"]) == (
        str(customer.pk),
        "save-card",
        "stripe",
    )
    session = session_of(body["checkout_url"])
    assert (session["mode"], session["customer"]) == ("setup", customer.provider_customer_id)
    assert api.post("/api/v1/customers/nobody/checkout_url").status_code == 404
