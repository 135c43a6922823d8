"""POST /invoices/preview: the invoice the billing pipeline would issue, persisted nowhere (no
invoice, fee, period claim, event, number or webhook outbox row survives). Lago's routes and params:
app/controllers/api/v1/invoices_controller.rb#preview.

Worked examples, no tax:
- "metered": 10.00 a month in arrears, api_calls 0.05 each; 7 calls this month:
  10.00 + 7 x 0.05 = 10.35 at the end of the month.
- "advance": 30.00 a month in advance, calendar; subscribing on 1 June 2030 bills June at once: 30.00.
- "metered" for a new customer, anniversary billing: one whole month in arrears, 10.00.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from customers.models import Customer
from invoicing.models import Fee, Invoice, InvoiceEvent, InvoiceSubscription
from plans.models import Subscription
from tests.factories.customers import make_customer
from tests.factories.invoicing import events, subscribe, utc
from tests.factories.plans import make_plan, standard_charge
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db


def _counts() -> tuple[int, ...]:
    return tuple(
        model.objects.count()
        for model in (Customer, Invoice, Fee, InvoiceSubscription, InvoiceEvent, Subscription, WebhookDelivery)
    )


@pytest.fixture
def metered():
    return make_plan(code="metered", amount_cents=1000, charges=[standard_charge(amount="0.05")])


def test_preview_of_an_existing_subscription_stores_nothing(api, metered):
    now = timezone.now()
    start = utc(now.year, now.month, 1)
    subscription = subscribe(plan=metered, customer=make_customer(external_id="acme", currency="USD"), start=start)
    events(subscription, [start] * 7)
    before = _counts()

    response = api.post(
        "/api/v1/invoices/preview",
        {"customer": {"external_id": "acme"}, "subscriptions": {"external_ids": [subscription.external_id]}},
    )

    assert response.status_code == 200, response.content
    invoice = response.json()["invoice"]
    assert (invoice["fees_amount_cents"], invoice["total_amount_cents"], invoice["currency"]) == (1035, 1035, "USD")
    assert sorted(fee["amount_cents"] for fee in invoice["fees"]) == [35, 1000]
    assert invoice["status"] == "draft"
    assert invoice["customer"]["external_id"] == "acme"
    assert [p["external_subscription_id"] for p in invoice["billing_periods"]] == [subscription.external_id]
    assert _counts() == before
    # Previewing twice gives the same figures (nothing was consumed).
    again = api.post(
        "/api/v1/invoices/preview",
        {"customer": {"external_id": "acme"}, "subscriptions": {"external_ids": [subscription.external_id]}},
    )
    assert again.json()["invoice"]["total_amount_cents"] == 1035


def test_preview_of_a_plan_paid_in_advance_for_a_future_start(api):
    make_plan(code="advance", amount_cents=3000, pay_in_advance=True)
    make_customer(external_id="newco", currency="USD")
    before = _counts()

    response = api.post(
        "/api/v1/invoices/preview",
        {"customer": {"external_id": "newco"}, "plan_code": "advance", "subscription_at": "2030-06-01T00:00:00Z"},
    )

    assert response.status_code == 200, response.content
    invoice = response.json()["invoice"]
    assert invoice["total_amount_cents"] == 3000
    period = invoice["billing_periods"][0]
    assert (period["subscription_from_datetime"], period["subscription_to_datetime"]) == (
        "2030-06-01T00:00:00Z",
        "2030-06-30T23:59:59Z",
    )
    assert _counts() == before


def test_preview_for_a_customer_not_yet_known(api, metered):
    before = _counts()

    response = api.post(
        "/api/v1/invoices/preview",
        {"customer": {"name": "Prospect", "country": "FR"}, "plan_code": "metered", "billing_time": "anniversary"},
    )

    assert response.status_code == 200, response.content
    invoice = response.json()["invoice"]
    assert invoice["total_amount_cents"] == 1000
    assert invoice["customer"]["name"] == "Prospect"
    assert _counts() == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"customer": {"external_id": "acme"}, "plan_code": "nope"}, 404, "plan_not_found"),
        ({"customer": {"external_id": "ghost"}, "subscriptions": {"external_ids": ["s"]}}, 404, "customer_not_found"),
        (
            {"customer": {"external_id": "acme"}, "subscriptions": {"external_ids": ["s"]}},
            404,
            "subscription_not_found",
        ),
        ({"customer": {"external_id": "acme"}}, 422, "validation_errors"),
        (
            {"customer": {"external_id": "acme"}, "plan_code": "metered", "billing_time": "weekly"},
            422,
            "validation_errors",
        ),
    ],
)
def test_preview_refusals(api, metered, body, status, code):
    make_customer(external_id="acme", currency="USD")
    response = api.post("/api/v1/invoices/preview", body)
    assert (response.status_code, response.json()["code"]) == (status, code)


def test_preview_refuses_a_plan_in_another_currency(api):
    make_plan(code="euro", amount_cents=1000, amount_currency="EUR")
    make_customer(external_id="dollars", currency="USD")
    response = api.post("/api/v1/invoices/preview", {"customer": {"external_id": "dollars"}, "plan_code": "euro"})
    assert response.status_code == 422
    assert response.json()["error_details"] == {"currency": ["currencies_does_not_match"]}
