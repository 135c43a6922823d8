"""Lago's own Python client (lago-python-client 1.55.0) against a live Tollgate: past,
projected and lifetime usage, fee estimates, subscription alerts.

The plan prices api_calls at 0.05 each (standard, in arrears) and "clicks" at 0.10 each, paid
in advance. January 2024: 100 calls, 5.00, billed on Feb 1.
"""

from __future__ import annotations

import pytest
from django.utils import timezone
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import Event
from lago_python_client.models.alert import Alert, AlertsList, AlertThreshold, AlertThresholdList

from invoicing.models import Alert as AlertRow
from invoicing.models import Fee
from tests.factories.invoicing import bill, events, only_invoice, subscribe, utc
from tests.factories.plans import make_plan, metric

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def client(live_server, api_key) -> Client:
    return Client(api_key=api_key.raw, api_url=live_server.url)


@pytest.fixture
def billed(db):
    plan = make_plan(
        code="client_usage",
        amount_cents=0,
        charges=[
            {
                "billable_metric_id": str(metric("api_calls").pk),
                "charge_model": "standard",
                "properties": {"amount": "0.05"},
            },
            {
                "billable_metric_id": str(metric("clicks").pk),
                "charge_model": "standard",
                "pay_in_advance": True,
                "properties": {"amount": "0.10"},
            },
        ],
    )
    subscription = subscribe(plan=plan, external_id="sub_c")
    events(subscription, [utc(2024, 1, 10)] * 100)
    invoice = only_invoice(bill(utc(2024, 2, 1)))
    events(subscription, [timezone.now()] * 10)  # this period so far: 0.50
    return subscription, invoice


def test_past_projected_and_lifetime_usage(client, billed):
    subscription, invoice = billed
    customer_id = subscription.customer.external_id

    past = client.customers.past_usage(customer_id, "sub_c", {"periods_count": 5})
    assert past["meta"]["total_count"] == 1
    (period,) = past["usage_periods"]
    assert (period.lago_invoice_id, period.amount_cents, period.from_datetime) == (
        str(invoice.pk),
        500,
        "2024-01-01T00:00:00Z",
    )
    assert period.charges_usage[0].units == "100"

    projected = client.customers.projected_usage(customer_id, "sub_c")
    assert projected.amount_cents == 50
    assert projected.projected_amount_cents >= 50  # the ratio depends on today's date (tested elsewhere)
    calls = next(row for row in projected.charges_usage if row.billable_metric.code == "api_calls")
    assert calls.units == "10"

    updated = client.subscriptions.update_lifetime_usage("sub_c", 20000)
    assert updated.external_historical_usage_amount_cents == 20000
    found = client.subscriptions.lifetime_usage("sub_c")
    # 200.00 historical + 5.00 invoiced (January) + 0.50 current.
    assert (found.external_historical_usage_amount_cents, found.invoiced_usage_amount_cents) == (20000, 500)
    assert found.current_usage_amount_cents == 50
    assert found.lago_subscription_id == str(subscription.pk)

    with pytest.raises(LagoApiError) as missing:
        client.subscriptions.lifetime_usage("nope")
    assert missing.value.status_code == 404


def test_estimate_fees(client, billed):
    fees_before = Fee.objects.count()
    estimated = client.events.estimate_fees(
        Event(transaction_id="tx_est", external_subscription_id="sub_c", code="clicks", properties={})
    )
    (fee,) = estimated["fees"]
    assert (fee.lago_id, fee.amount_cents, fee.units, fee.pay_in_advance) == (None, 10, "1", True)
    assert fee.event_transaction_id == "tx_est"
    assert Fee.objects.count() == fees_before

    with pytest.raises(LagoApiError) as refused:
        client.events.estimate_fees(Event(transaction_id="tx_2", external_subscription_id="sub_c", code="api_calls"))
    assert refused.value.status_code == 422


def test_subscription_alerts(client, billed):
    created = client.subscriptions.create_alerts(
        "sub_c",
        AlertsList(
            alerts=[
                Alert(
                    alert_type="current_usage_amount",
                    code="spend",
                    name="Spend",
                    thresholds=AlertThresholdList(
                        __root__=[
                            AlertThreshold(code="warn", value="4000"),
                            AlertThreshold(code="step", value="1000", recurring=True),
                        ]
                    ),
                ),
                Alert(
                    alert_type="billable_metric_current_usage_units",
                    code="calls",
                    billable_metric_code="api_calls",
                    thresholds=AlertThresholdList(__root__=[AlertThreshold(value="1000")]),
                ),
            ]
        ),
    )
    spend, calls = created["alerts"]
    assert (spend.code, spend.alert_type, spend.external_subscription_id) == ("spend", "current_usage_amount", "sub_c")
    assert [(t.value, t.recurring) for t in spend.thresholds.__root__] == [("1000", True), ("4000", False)]
    assert calls.billable_metric.code == "api_calls"

    client.subscriptions.delete_alerts("sub_c")
    assert AlertRow.objects.filter(deleted_at__isnull=True).count() == 0
