"""Past, projected and lifetime usage, and fee estimates: worked amounts, computed by hand.

January 2024 has 31 days; plans are calendar-monthly, customers in UTC. The plan "metered":
    api_calls  (count)            standard 0.05 per call
    storage    (sum of gb)        graduated: 0-100 free, then 0.10 per gb
    seats      (unique count of seat, recurring: seats stay until removed) standard 2.00 per seat
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing import estimates, projection
from invoicing.api.usage import serialize_projected_usage
from invoicing.models import Fee
from invoicing.monitoring import lifetime
from invoicing.usage import customer_usage
from tests.factories.invoicing import bill, events, only_invoice, subscribe, utc
from tests.factories.metrics import make_event
from tests.factories.plans import make_plan, make_tax, metric

pytestmark = pytest.mark.django_db

D = Decimal
GRADUATED = [
    {"from_value": 0, "to_value": 100, "per_unit_amount": "0", "flat_amount": "0"},
    {"from_value": 101, "to_value": None, "per_unit_amount": "0.10", "flat_amount": "0"},
]


def _plan(**fields):
    calls = metric("api_calls")
    storage = metric("storage", aggregation_type="sum_agg", field_name="gb")
    seats = metric("seats", aggregation_type="unique_count_agg", field_name="seat", recurring=True)
    return make_plan(
        code="metered",
        amount_cents=0,
        charges=[
            {"billable_metric_id": str(calls.pk), "charge_model": "standard", "properties": {"amount": "0.05"}},
            {
                "billable_metric_id": str(storage.pk),
                "charge_model": "graduated",
                "properties": {"graduated_ranges": GRADUATED},
            },
            {"billable_metric_id": str(seats.pk), "charge_model": "standard", "properties": {"amount": "2"}},
        ],
        **fields,
    )


def _january_usage(sub):
    """By Jan 10 noon: 100 calls (5.00), 50 gb (free), 3 seats (6.00): 11.00."""
    events(sub, [utc(2024, 1, 5, 12)] * 100)
    make_event(
        code="storage", external_subscription_id=sub.external_id, timestamp=utc(2024, 1, 6), properties={"gb": 50}
    )
    for seat in ("ann", "bob", "cy"):
        make_event(
            code="seats", external_subscription_id=sub.external_id, timestamp=utc(2024, 1, 2), properties={"seat": seat}
        )


# --- projected usage -------------------------------------------------------------------------


def test_period_ratio_counts_begun_days_as_lago():
    # Lago's Fees::ProjectionService#period_ratio with Utils::Datetime.date_diff_with_timezone:
    # days begun (ceil, the current day included) over the period's days.
    jan, feb = utc(2024, 1, 1), utc(2024, 2, 1)
    ratio = projection.period_ratio
    assert ratio(from_datetime=jan, to_datetime=feb, at=utc(2024, 1, 10, 12), timezone="UTC") == D(10) / D(31)
    assert ratio(from_datetime=jan, to_datetime=feb, at=utc(2024, 1, 11), timezone="UTC") == D(11) / D(31)
    assert ratio(from_datetime=jan, to_datetime=feb, at=utc(2024, 1, 1), timezone="UTC") == D(1) / D(31)
    assert ratio(from_datetime=jan, to_datetime=feb, at=feb, timezone="UTC") == 1
    assert ratio(from_datetime=jan, to_datetime=feb, at=utc(2023, 12, 31), timezone="UTC") == 0
    # In Tokyo (UTC+9) Jan 10 15:00 UTC is already Jan 11 (the period is Tokyo's month, 31 days).
    tokyo_jan, tokyo_feb = utc(2023, 12, 31, 15), utc(2024, 1, 31, 15)
    assert ratio(from_datetime=tokyo_jan, to_datetime=tokyo_feb, at=utc(2024, 1, 10, 15), timezone="Asia/Tokyo") == (
        D(11) / D(31)
    )


def test_projected_usage_extrapolates_each_charge_as_lago():
    """Lago's Fees::ProjectionService and ChargeModels::*#compute_projected_amount, at Jan 10
    noon (ratio 10/31):
        api_calls: 100 / (10/31) = 310.00 calls x 0.05 = 15.50
        storage:   50 / (10/31) = 155.00 gb, graduated: 55 x 0.10 = 5.50 (today: 0)
        seats:     recurring, the current usage stands: 3 seats, 6.00
        projected amount 27.00 (current 11.00)."""
    sub = subscribe(plan=_plan())
    _january_usage(sub)
    at = utc(2024, 1, 10, 12)
    usage = customer_usage(subscription=sub, at=at)

    body = serialize_projected_usage(usage, at=at)

    assert (body["amount_cents"], body["projected_amount_cents"]) == (1100, 2700)
    by_code = {row["billable_metric"]["code"]: row for row in body["charges_usage"]}
    assert (by_code["api_calls"]["projected_units"], by_code["api_calls"]["projected_amount_cents"]) == ("310", 1550)
    assert (by_code["storage"]["units"], by_code["storage"]["amount_cents"]) == ("50", 0)
    assert (by_code["storage"]["projected_units"], by_code["storage"]["projected_amount_cents"]) == ("155", 550)
    assert (by_code["seats"]["projected_units"], by_code["seats"]["projected_amount_cents"]) == ("3", 600)


def test_projected_units_round_to_two_decimals():
    # 7 calls on Jan 3 (ratio 3/31): 7 x 31 / 3 = 72.333... -> 72.33 calls x 0.05 = 3.6165 -> 3.62.
    sub = subscribe(plan=_plan())
    events(sub, [utc(2024, 1, 2)] * 7)
    at = utc(2024, 1, 3, 8)
    body = serialize_projected_usage(customer_usage(subscription=sub, at=at), at=at)
    calls = next(row for row in body["charges_usage"] if row["billable_metric"]["code"] == "api_calls")
    assert (calls["projected_units"], calls["projected_amount_cents"]) == ("72.33", 362)


# --- past usage ------------------------------------------------------------------------------


def test_past_usage_lists_billed_periods_newest_first(api):
    """January: 100 calls 5.00 + 50 gb 0 + 3 seats 6.00 = 11.00, VAT 20% 2.20.
    February: 40 calls 2.00 + 150 gb (50 x 0.10 = 5.00) + 3 seats 6.00 = 13.00, VAT 2.60."""
    tax = make_tax(code="vat", rate="20")
    plan = _plan()
    plan.taxes.add(tax)
    sub = subscribe(plan=plan)
    _january_usage(sub)
    january = only_invoice(bill(utc(2024, 2, 1)))
    events(sub, [utc(2024, 2, 3)] * 40)
    make_event(code="storage", external_subscription_id="sub_1", timestamp=utc(2024, 2, 4), properties={"gb": 150})
    february = only_invoice(bill(utc(2024, 3, 1)))

    answer = api.get(f"/api/v1/customers/{sub.customer.external_id}/past_usage", {"external_subscription_id": "sub_1"})

    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["meta"]["total_count"] == 2
    newest, oldest = body["usage_periods"]
    assert (newest["lago_invoice_id"], oldest["lago_invoice_id"]) == (str(february.pk), str(january.pk))
    assert (newest["from_datetime"], newest["to_datetime"]) == ("2024-02-01T00:00:00Z", "2024-02-29T23:59:59Z")
    assert (newest["amount_cents"], newest["taxes_amount_cents"], newest["total_amount_cents"]) == (1300, 260, 1560)
    assert (oldest["amount_cents"], oldest["taxes_amount_cents"], oldest["total_amount_cents"]) == (1100, 220, 1320)
    storage = next(row for row in newest["charges_usage"] if row["billable_metric"]["code"] == "storage")
    assert (storage["units"], storage["amount_cents"]) == ("150", 500)

    one = api.get(
        "/api/v1/customers/cust_sub_1/past_usage",
        {"external_subscription_id": "sub_1", "billable_metric_code": "api_calls", "periods_count": 1},
    ).json()
    assert one["meta"]["total_count"] == 1
    assert [row["billable_metric"]["code"] for row in one["usage_periods"][0]["charges_usage"]] == ["api_calls"]

    missing = api.get("/api/v1/customers/cust_sub_1/past_usage")
    assert (missing.status_code, missing.json()["error_details"]) == (
        422,
        {"external_subscription_id": ["value_is_mandatory"]},
    )
    unknown_metric = api.get(
        "/api/v1/customers/cust_sub_1/past_usage", {"external_subscription_id": "sub_1", "billable_metric_code": "x"}
    )
    assert (unknown_metric.status_code, unknown_metric.json()["code"]) == (404, "billable_metric_not_found")
    nobody = api.get("/api/v1/customers/nobody/past_usage", {"external_subscription_id": "sub_1"}).json()
    assert nobody["usage_periods"] == []


# --- lifetime usage --------------------------------------------------------------------------


def test_lifetime_usage_sums_historical_invoiced_and_current():
    """Historical 250.00 (given), invoiced January 11.00, current February so far: 20 calls
    (1.00) + 3 seats carried over (6.00) = 7.00: total 268.00."""
    sub = subscribe(plan=_plan())
    _january_usage(sub)
    only_invoice(bill(utc(2024, 2, 1)))
    events(sub, [utc(2024, 2, 2)] * 20)
    lifetime.lifetime_usage_update(subscription=sub, historical_usage_amount=D("250"))

    figures = lifetime.lifetime_usage_compute(subscription=sub, at=utc(2024, 2, 10))

    assert (figures.historical_amount, figures.invoiced_amount, figures.current_amount) == (D("250"), D("11"), D("7"))
    assert figures.total_amount == D("268")


def test_lifetime_usage_route(api):
    sub = subscribe(plan=_plan())
    answer = api.put(
        "/api/v1/subscriptions/sub_1/lifetime_usage",
        {"lifetime_usage": {"external_historical_usage_amount_cents": 12345}},
        format="json",
    )
    assert answer.status_code == 200, answer.json()
    body = answer.json()["lifetime_usage"]
    assert body["external_historical_usage_amount_cents"] == 12345
    assert body["external_subscription_id"] == "sub_1"
    assert body["lago_subscription_id"] == str(sub.pk)
    assert "usage_thresholds" not in body
    again = api.get("/api/v1/subscriptions/sub_1/lifetime_usage").json()["lifetime_usage"]
    assert (again["lago_id"], again["external_historical_usage_amount_cents"]) == (body["lago_id"], 12345)

    bad = api.put(
        "/api/v1/subscriptions/sub_1/lifetime_usage",
        {"lifetime_usage": {"external_historical_usage_amount_cents": "12"}},
        format="json",
    )
    assert bad.status_code == 422
    negative = api.put(
        "/api/v1/subscriptions/sub_1/lifetime_usage",
        {"lifetime_usage": {"external_historical_usage_amount_cents": -1}},
        format="json",
    )
    assert negative.status_code == 422
    assert api.get("/api/v1/subscriptions/nope/lifetime_usage").json()["code"] == "subscription_not_found"


# --- estimates -------------------------------------------------------------------------------


def _advance_plan():
    calls = metric("api_calls")
    payments = metric("payments", aggregation_type="sum_agg", field_name="amount")
    return make_plan(
        code="advance",
        amount_cents=0,
        charges=[
            {
                "billable_metric_id": str(calls.pk),
                "charge_model": "graduated",
                "pay_in_advance": True,
                "properties": {
                    "graduated_ranges": [
                        {"from_value": 0, "to_value": 10, "per_unit_amount": "0", "flat_amount": "0"},
                        {"from_value": 11, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "0"},
                    ]
                },
            },
            {
                "billable_metric_id": str(payments.pk),
                "charge_model": "percentage",
                "pay_in_advance": True,
                "properties": {"rate": "2", "fixed_amount": "0.30", "per_transaction_max_amount": "5"},
            },
        ],
    )


def test_estimate_fees_prices_the_next_event_within_the_period(api):
    """10 calls already this period (free tier): the 11th costs 0.50, with 20% VAT 0.10.
    Nothing is written."""
    tax = make_tax(code="vat", rate="20")
    plan = _advance_plan()
    plan.taxes.add(tax)
    sub = subscribe(plan=plan, start=utc(2020, 1, 1))
    for i in range(10):
        make_event(external_subscription_id="sub_1", timestamp=utc(2020, 1, 1), transaction_id=f"old_{i}")
    from django.utils import timezone

    now = timezone.now()
    events(sub, [now - timezone.timedelta(seconds=1)] * 10)
    fees_before = Fee.objects.count()

    answer = api.post(
        "/api/v1/events/estimate_fees",
        {"event": {"code": "api_calls", "external_subscription_id": "sub_1"}},
        format="json",
    )

    assert answer.status_code == 200, answer.json()
    (fee,) = answer.json()["fees"]
    assert (fee["lago_id"], fee["amount_cents"], fee["taxes_amount_cents"], fee["units"]) == (None, 50, 10, "1")
    assert fee["pay_in_advance"] is True
    assert fee["applied_taxes"][0]["tax_code"] == "vat"
    assert Fee.objects.count() == fees_before

    wrong = api.post(
        "/api/v1/events/estimate_fees",
        {"event": {"code": "storage", "external_subscription_id": "sub_1"}},
        format="json",
    )
    assert (wrong.status_code, wrong.json()["error_details"]) == (422, {"code": ["does_not_match_an_instant_charge"]})
    nobody = api.post(
        "/api/v1/events/estimate_fees", {"event": {"code": "api_calls", "external_subscription_id": "x"}}, format="json"
    )
    assert (nobody.status_code, nobody.json()["code"]) == (404, "subscription_not_found")


def test_instant_estimates_as_lago():
    """Lago's Charges::EstimateInstant::PercentageService: 100 x 2% + 0.30 = 2.30; 1,000 x 2% +
    0.30 = 20.30, capped at 5.00. Graduated charges are not estimated instantly."""
    sub = subscribe(plan=_advance_plan())
    (small,) = estimates.instant_fees_estimate(
        data={"code": "payments", "external_subscription_id": sub.external_id, "properties": {"amount": 100}}
    )
    assert (small.fee.amount, small.fee.units) == (D("2.30"), D(100))
    both = estimates.batch_instant_fees_estimate(
        events=[
            {"code": "payments", "external_subscription_id": "sub_1", "properties": {"amount": 1000}},
            {"code": "api_calls", "external_subscription_id": "sub_1"},
        ]
    )
    assert [fee.fee.amount for fee in both] == [D("5.00")]
    assert estimates.instant_amount("standard", {"amount": "0.25"}, D(8)) == D(2)
