"""Stripe customers (created or linked on customer_saved, mirrored by dj-stripe) and their payment
methods through the API."""

from __future__ import annotations

import pytest
import stripe
from djstripe import models as djstripe_models

from customers.models import Customer
from customers.signals import customer_saved
from payments.api.serializers import payment_method_lago_id
from tests.factories.customers import make_customer

from .conftest import LOCALSTRIPE_SECRET_KEY, make_card

pytestmark = pytest.mark.stripe


def save(customer, django_capture_on_commit_callbacks, **kwargs):
    """What the customers app does after commit: send customer_saved."""
    with django_capture_on_commit_callbacks(execute=True):
        customer_saved.send(sender=type(customer), customer_id=customer.pk, **kwargs)
    customer.refresh_from_db()


def test_customer_saved_creates_the_stripe_customer(stripe_api, django_capture_on_commit_callbacks):
    customer = make_customer(
        external_id="acme", name="Acme", email="ap@acme.test, ceo@acme.test", payment_provider="stripe"
    )

    save(customer, django_capture_on_commit_callbacks)
    first_id = customer.provider_customer_id
    save(customer, django_capture_on_commit_callbacks)

    assert first_id.startswith("cus_")
    assert customer.provider_customer_id == first_id
    remote = stripe.Customer.retrieve(first_id, api_key=LOCALSTRIPE_SECRET_KEY).to_dict()
    assert (remote["name"], remote["email"]) == ("Acme", "ap@acme.test")
    assert remote["metadata"] == {"tollgate_customer_id": str(customer.pk), "external_customer_id": "acme"}
    mirror = djstripe_models.Customer.objects.get(id=first_id)
    assert mirror.djstripe_owner_account_id == "acct_1TollgateTests"


def test_existing_stripe_customer_is_linked_not_created(stripe_api, django_capture_on_commit_callbacks):
    existing = stripe.Customer.create(name="Made in the dashboard", api_key=LOCALSTRIPE_SECRET_KEY)
    customer = make_customer(external_id="linked", payment_provider="stripe", provider_customer_id=existing["id"])

    save(customer, django_capture_on_commit_callbacks)

    assert customer.provider_customer_id == existing["id"]
    assert djstripe_models.Customer.objects.filter(id=existing["id"]).exists()
    assert djstripe_models.Customer.objects.count() == 1


def test_sync_with_provider_false_creates_nothing(stripe_api, django_capture_on_commit_callbacks):
    customer = make_customer(external_id="nosync", payment_provider="stripe")

    save(customer, django_capture_on_commit_callbacks, sync_with_provider=False)

    assert customer.provider_customer_id == ""
    assert not djstripe_models.Customer.objects.exists()


def test_manual_customers_are_left_alone(stripe_api, django_capture_on_commit_callbacks):
    customer = make_customer(external_id="manual", payment_provider="manual")

    save(customer, django_capture_on_commit_callbacks)

    assert customer.provider_customer_id == ""
    assert not djstripe_models.Customer.objects.exists()


def test_unknown_linked_customer_is_logged_not_raised(stripe_api, django_capture_on_commit_callbacks, caplog):
    customer = make_customer(external_id="ghost", payment_provider="stripe", provider_customer_id="cus_doesnotexist")

    save(customer, django_capture_on_commit_callbacks)

    assert "Stripe refused customer" in caplog.text


def test_without_stripe_keys_nothing_is_called(db, settings, django_capture_on_commit_callbacks):
    settings.STRIPE_TEST_SECRET_KEY = ""
    customer = make_customer(external_id="nokeys", payment_provider="stripe")

    save(customer, django_capture_on_commit_callbacks)

    assert customer.provider_customer_id == ""


# --- Payment methods API ------------------------------------------------------------------------


def attach(api, external_id, provider_method_id, **extra):
    return api.post(
        f"/api/v1/customers/{external_id}/payment_methods",
        {"payment_method": {"provider_method_id": provider_method_id, **extra}},
        format="json",
    )


def test_attach_list_and_set_default(api, stripe_api):
    make_customer(external_id="cards", payment_provider="stripe")

    first = attach(api, "cards", "pm_card_visa")
    second = attach(api, "cards", make_card("4242424242424242"), set_as_default=False)

    assert first.status_code == 200, first.json()
    visa = first.json()["payment_method"]
    assert visa["provider_method_id"].startswith("pm_")
    assert visa["is_default"] is True
    assert visa["payment_provider_type"] == "stripe"
    assert visa["details"]["last4"] == "4242"
    assert visa["lago_id"] == payment_method_lago_id(visa["provider_method_id"])
    other = second.json()["payment_method"]
    assert other["is_default"] is False

    listed = api.get("/api/v1/customers/cards/payment_methods").json()
    assert [(pm["provider_method_id"], pm["is_default"]) for pm in listed["payment_methods"]] == [
        (visa["provider_method_id"], True),
        (other["provider_method_id"], False),
    ]
    assert listed["meta"]["total_count"] == 2

    response = api.put(f"/api/v1/customers/cards/payment_methods/{other['lago_id']}/set_as_default")

    assert response.status_code == 200
    assert response.json()["payment_method"]["is_default"] is True
    stripe_customer_id = Customer.objects.get(external_id="cards").provider_customer_id
    remote = stripe.Customer.retrieve(stripe_customer_id, api_key=LOCALSTRIPE_SECRET_KEY)
    assert remote["invoice_settings"]["default_payment_method"] == other["provider_method_id"]


def test_lago_client_reads_payment_methods(api, stripe_api):
    from lago_python_client.models.payment_method import PaymentMethodResponse

    make_customer(external_id="lago", payment_provider="stripe")
    body = attach(api, "lago", "pm_card_visa").json()["payment_method"]

    assert PaymentMethodResponse.parse_obj(body).is_default is True


@pytest.mark.parametrize(
    ("provider_method_id", "codes"),
    [("4000000000000002", {"card_declined"}), ("pm_missing", {"resource_missing", "invalid_request"})],
)
def test_attach_refused_by_stripe_is_422(api, stripe_api, provider_method_id, codes):
    make_customer(external_id="refused", payment_provider="stripe")
    if provider_method_id.isdigit():
        provider_method_id = make_card(provider_method_id)

    response = attach(api, "refused", provider_method_id)

    assert response.status_code == 422
    [error_code] = response.json()["error_details"]["provider_method_id"]
    assert error_code in codes


def test_attach_to_a_manual_customer_is_422(api, stripe_api):
    make_customer(external_id="by-hand", payment_provider="manual")

    response = attach(api, "by-hand", "pm_card_visa")

    assert response.status_code == 422
    assert response.json()["error_details"] == {"payment_provider": ["invalid_payment_provider"]}


def test_payment_methods_errors(api, stripe_api):
    make_customer(external_id="nothing", payment_provider="stripe")

    assert api.get("/api/v1/customers/nobody/payment_methods").json()["code"] == "customer_not_found"
    assert api.get("/api/v1/customers/nothing/payment_methods").json()["payment_methods"] == []
    missing = api.put("/api/v1/customers/nothing/payment_methods/pm_x/set_as_default")
    assert (missing.status_code, missing.json()["code"]) == (404, "payment_method_not_found")
    assert attach(api, "nothing", "").status_code == 422
    assert api.post("/api/v1/customers/nothing/payment_methods", {}, format="json").status_code == 400


def test_sync_with_provider_none_means_create(stripe_api, django_capture_on_commit_callbacks):
    customer = make_customer(external_id="unspecified", payment_provider="stripe")

    save(customer, django_capture_on_commit_callbacks, sync_with_provider=None)

    assert customer.provider_customer_id.startswith("cus_")
