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


@pytest.fixture
def taxed_subscription(db):
    """Two charges, one taxed by its own tax, one falling back to the customer's; the first has
    a charge filter on a metric filter, beside a deleted one that must not count."""
    from plans.models import ChargeFilter, CustomerTax
    from tests.factories.metrics import make_metric
    from tests.factories.plans import make_plan, make_tax

    make_tax(code="vat_20", rate="20", applied_to_organization=True)  # not used: the customer has its own
    make_tax(code="digital", rate="10")
    own = make_tax(code="cust_7", rate="7")
    calls = make_metric(code="region_calls", filters={"region": ["eu", "us"]})
    storage = make_metric(code="disk_gb", aggregation_type="sum_agg", field_name="gb")
    plan = make_plan(
        code="taxed",
        charges=[
            {
                "billable_metric_id": str(calls.pk),
                "charge_model": "standard",
                "properties": {"amount": "0.5"},
                "tax_codes": ["digital"],
                "filters": [
                    {"values": {"region": ["eu"]}, "properties": {"amount": "1"}, "invoice_display_name": "EU"}
                ],
            },
            {"billable_metric_id": str(storage.pk), "charge_model": "standard", "properties": {"amount": "0.25"}},
        ],
    )
    deleted = ChargeFilter.objects.get(charge__billable_metric=calls)
    ChargeFilter.objects.create(
        charge=deleted.charge, values={"region": ["us"]}, properties={"amount": "100"}, deleted_at=timezone.now()
    )
    now = timezone.now()
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    customer = make_customer(external_id="taxed", currency="USD")
    CustomerTax.objects.create(customer=customer, tax=own)
    subscription = make_subscription(
        customer=customer, plan=plan, external_id="sub_taxed", subscription_at=month_start, now=month_start
    )
    regions = ["eu", "eu", "eu", "us", "us"]
    make_events(
        {"code": "region_calls", "external_subscription_id": "sub_taxed", "timestamp": now, "properties": {"region": r}}
        for r in regions
    )
    make_event(code="disk_gb", external_subscription_id="sub_taxed", timestamp=now, properties={"gb": "20"})
    return subscription


@pytest.mark.postgres
def test_current_usage_loads_the_subscription_in_two_queries_with_the_same_answer(api, taxed_subscription):
    """3 EU calls x 1 = 3.00 (the EU filter) + 2 other calls x 0.5 = 1.00: 4.00, taxed 10% by the
    charge's own tax = 0.40; 20 GB x 0.25 = 5.00, no charge or plan tax: the customer's 7% = 0.35
    (the organization's 20% does not apply). Amount 9.00, taxes 0.75, total 9.75."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from invoicing import billing
    from invoicing.api.serializers import serialize_customer_usage
    from invoicing.usage import customer_usage
    from plans.models import Subscription

    with CaptureQueriesContext(connection) as queries:
        answer = api.get("/api/v1/customers/taxed/current_usage", {"external_subscription_id": "sub_taxed"})

    assert answer.status_code == 200, answer.json()
    body = answer.json()["customer_usage"]
    assert (body["amount_cents"], body["taxes_amount_cents"], body["total_amount_cents"]) == (900, 75, 975)
    by_metric = {usage["billable_metric"]["code"]: usage for usage in body["charges_usage"]}
    calls = by_metric["region_calls"]
    assert (calls["units"], calls["events_count"], calls["amount_cents"]) == ("5", 5, 400)
    assert sorted((f["invoice_display_name"] or "", f["units"], f["amount_cents"]) for f in calls["filters"]) == [
        ("", "2", 100),
        ("EU", "3", 300),
    ]
    assert (by_metric["disk_gb"]["units"], by_metric["disk_gb"]["amount_cents"]) == ("20", 500)
    # The catalog (subscription, customer, plan, charges, metrics, filters, taxes) in two reads.
    catalog_reads = [q["sql"] for q in queries.captured_queries if '"plans_' in q["sql"] or "plans_" in q["sql"][:200]]
    assert len(catalog_reads) == 2, catalog_reads
    # The same answer as the prefetched subscription gives.
    loaded = billing.with_billing_relations(Subscription.objects.filter(pk=taxed_subscription.pk)).get()
    usage = customer_usage(subscription=loaded, at=timezone.now())
    expected = serialize_customer_usage(usage)
    assert body["charges_usage"] == expected["charges_usage"]
    assert body["taxes_amount_cents"] == expected["taxes_amount_cents"]


@pytest.mark.postgres
def test_current_usage_reads_the_rollup_watermarks_with_its_charges(api):
    """An anniversary subscription started 5 days ago at 20 past an hour; its storage: 4 GB 10
    minutes after the start and 2 GB two hours later (folded), 1.5 GB three hours after the start
    arriving after the fold (a dirty hour), 12.5 GB now (after the watermark), and 1,000 GB 10
    minutes before the start (not in the period, though in the start's hour, whose bucket holds
    it). 4 + 2 + 1.5 + 12.5 = 20 GB x 0.25 = 5.00. The watermarks come with the charges' read:
    no statement of their own; the answer is the raw path's."""
    from unittest import mock

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from metrics import aggregation, rollup_reads
    from metrics.rollups import floor_hour, usage_rollups_fold

    plan, _ = catalog()
    now = timezone.now()
    start = floor_hour(now) - timedelta(days=5) + timedelta(minutes=20)
    customer = make_customer(external_id="rolled", currency="USD")
    make_subscription(
        customer=customer,
        plan=plan,
        external_id="sub_rolled",
        subscription_at=start,
        now=start,
        billing_time="anniversary",
    )
    for at, gb in ((start - timedelta(minutes=10), "1000"), (start + timedelta(minutes=10), "4")):
        make_event(code="storage_gb", external_subscription_id="sub_rolled", timestamp=at, properties={"gb": gb})
    make_event(
        code="storage_gb",
        external_subscription_id="sub_rolled",
        timestamp=start + timedelta(hours=2),
        properties={"gb": "2"},
    )
    usage_rollups_fold(now=floor_hour(now), grace=timedelta(0))
    make_event(
        code="storage_gb",
        external_subscription_id="sub_rolled",
        timestamp=start + timedelta(hours=3),
        properties={"gb": "1.5"},
    )
    make_event(code="storage_gb", external_subscription_id="sub_rolled", timestamp=now, properties={"gb": "12.5"})

    def get() -> dict:
        answer = api.get("/api/v1/customers/rolled/current_usage", {"external_subscription_id": "sub_rolled"})
        assert answer.status_code == 200, answer.json()
        return answer.json()["customer_usage"]

    answers: list = []

    def answered(*args, **kwargs):
        answers.append((args[0].code, rollup_reads.rollup_aggregate(*args, **kwargs)))
        return answers[-1][1]

    with (
        CaptureQueriesContext(connection) as queries,
        mock.patch.object(aggregation, "rollup_aggregate", side_effect=answered),
    ):
        body = get()
    # The storage read came from the rollups (the known watermarks stood); api_calls has no event,
    # no watermark: read raw.
    assert dict(answers)["storage_gb"] is not None and dict(answers)["api_calls"] is None
    storage = next(u for u in body["charges_usage"] if u["billable_metric"]["code"] == "storage_gb")
    assert (storage["units"], storage["events_count"], storage["amount_cents"]) == ("20", 4, 500)
    statements = [q["sql"] for q in queries.captured_queries]
    assert any("metrics_usagerollup r" in sql for sql in statements)  # read from the buckets
    assert not any(sql.startswith("\nSELECT w.external_subscription_id") for sql in statements), statements
    with mock.patch.object(aggregation, "rollup_aggregate", return_value=None):
        assert get() == body
