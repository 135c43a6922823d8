"""GET /customers/{external_id}/current_usage: Lago's customer_usage shape, computed by the
billing code (invoicing.usage), with hand-computed amounts.

Plan "startup" (conftest), this month so far: 1,200 calls -> 200 x 0.002 = 0.40;
10 + 2.5 GB = 12.5 x 0.25 = 3.125 -> 3.13; amount 3.53, no tax applies (vat_20 is not the
organization's), total 3.53.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from lago_python_client.models.customer_usage import CustomerUsageResponse

from tests.factories.customers import make_customer
from tests.factories.metrics import make_event, make_events
from tests.factories.plans import make_subscription

from .conftest import catalog

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription(db):
    plan, _ = catalog()
    now = timezone.now()
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    customer = make_customer(external_id="usage", currency="USD")
    subscription = make_subscription(
        customer=customer, plan=plan, external_id="sub_usage", subscription_at=month_start, now=month_start
    )
    make_events({"code": "api_calls", "external_subscription_id": "sub_usage", "timestamp": now} for _ in range(1200))
    for gb in ("10", "2.5"):
        make_event(code="storage_gb", external_subscription_id="sub_usage", timestamp=now, properties={"gb": gb})
    # Noise: another subscription's events and last month's.
    make_event(code="api_calls", external_subscription_id="sub_other", timestamp=now)
    make_event(
        code="storage_gb",
        external_subscription_id="sub_usage",
        timestamp=month_start - timedelta(seconds=1),
        properties={"gb": "1000"},
    )
    return subscription


def test_current_usage_in_lago_shape(api, subscription):
    answer = api.get("/api/v1/customers/usage/current_usage", {"external_subscription_id": "sub_usage"})

    assert answer.status_code == 200, answer.json()
    body = answer.json()["customer_usage"]
    CustomerUsageResponse.parse_obj(body)
    now = timezone.now()
    assert body["from_datetime"] == f"{now:%Y-%m}-01T00:00:00Z"
    assert body["to_datetime"].endswith("T23:59:59Z")
    assert (body["currency"], body["amount_cents"], body["taxes_amount_cents"], body["total_amount_cents"]) == (
        "USD",
        353,
        0,
        353,
    )
    by_metric = {usage["billable_metric"]["code"]: usage for usage in body["charges_usage"]}
    calls, storage = by_metric["api_calls"], by_metric["storage_gb"]
    assert (calls["units"], calls["events_count"], calls["amount_cents"]) == ("1200", 1200, 40)
    assert (storage["units"], storage["events_count"], storage["amount_cents"]) == ("12.5", 2, 313)
    assert calls["charge"]["charge_model"] == "graduated"
    assert calls["charge"]["invoice_display_name"] == "API calls"
    assert (calls["filters"], calls["grouped_usage"]) == ([], [])
    assert storage["billable_metric"]["aggregation_type"] == "sum_agg"


@pytest.mark.parametrize(
    ("customer", "params", "code"),
    [
        ("nobody", {"external_subscription_id": "sub_usage"}, "customer_not_found"),
        ("usage", {"external_subscription_id": "sub_nope"}, "subscription_not_found"),
        ("usage", {}, "subscription_not_found"),
    ],
)
def test_current_usage_not_found(api, subscription, customer, params, code):
    answer = api.get(f"/api/v1/customers/{customer}/current_usage", params)

    assert answer.status_code == 404
    assert answer.json()["code"] == code


def test_another_customers_subscription_is_not_found(api, subscription):
    make_customer(external_id="someone_else", currency="USD")

    answer = api.get("/api/v1/customers/someone_else/current_usage", {"external_subscription_id": "sub_usage"})

    assert answer.status_code == 404
    assert answer.json()["code"] == "subscription_not_found"
