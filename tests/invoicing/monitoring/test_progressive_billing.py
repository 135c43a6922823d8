"""Progressive billing: worked amounts, computed by hand.

Plan "progressive" (monthly, calendar, no subscription fee) prices api_calls at 1.00 each, VAT
10%; usage thresholds 20.00, then every 50.00 above it (recurring): levels 20, 70, 120, ...
(Lago's LifetimeUsages::UsageThresholds::CheckService and Invoices::ProgressiveBillingService;
the period's invoice deducts what was billed, as Lago's Credits::ProgressiveBillingService.)
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from invoicing.models import AppliedUsageThreshold, Invoice, InvoiceType
from invoicing.monitoring import evaluation, lifetime, thresholds
from plans.usage_thresholds import plan_usage_thresholds_set
from tests.factories.invoicing import amounts, bill, events, only_invoice, subscribe, utc
from tests.factories.plans import make_plan, make_tax, metric

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def subscription(db):
    plan = make_plan(
        code="progressive",
        amount_cents=0,
        charges=[
            {
                "billable_metric_id": str(metric("api_calls").pk),
                "charge_model": "standard",
                "properties": {"amount": "1"},
            }
        ],
    )
    plan.taxes.add(make_tax(code="vat_10", rate="10"))
    plan_usage_thresholds_set(
        plan=plan,
        items=[{"amount_cents": 2000, "threshold_display_name": "First"}, {"amount_cents": 5000, "recurring": True}],
    )
    return subscribe(plan=plan)


def _evaluate(subscription, at):
    with transaction.atomic():
        evaluation.activities_record(subscription_ids=[subscription.pk])
    result = evaluation.subscription_usage_evaluate(subscription_id=subscription.pk, now=at)
    return [Invoice.objects.get(pk=pk) for pk in result.progressive_invoice_ids]


def _progressive():
    return list(Invoice.objects.filter(invoice_type=InvoiceType.PROGRESSIVE_BILLING).order_by("created_at"))


def test_thresholds_bill_the_period_so_far_and_the_period_invoice_deducts_it(subscription):
    events(subscription, [utc(2024, 1, 5)] * 15)
    assert _evaluate(subscription, utc(2024, 1, 5, 12)) == []  # 15.00 < 20.00

    events(subscription, [utc(2024, 1, 8)] * 10)
    (first,) = _evaluate(subscription, utc(2024, 1, 8, 12))  # 25.00: level 20.00 crossed
    assert (first.status, first.issuing_date.isoformat()) == ("finalized", "2024-01-08")
    assert amounts(first) == {
        "fees_amount": D("25"),
        "coupons_amount": D("0"),
        "sub_total_excluding_taxes_amount": D("25"),
        "taxes_amount": D("2.5"),
        "sub_total_including_taxes_amount": D("27.5"),
        "credit_notes_amount": D("0"),
        "total_amount": D("27.5"),
    }
    # The lifetime usage object's usage_thresholds (Lago's UsageThresholdsCompletionService):
    # 20.00 reached; the next level, 70.00, is (25 - 20) / 50 = 10% on its way.
    rows = thresholds.thresholds_completion(
        lifetime.lifetime_usage_compute(subscription=subscription, at=utc(2024, 1, 8))
    )
    assert [(row.amount_cents, row.completion_ratio) for row in rows] == [(2000, D(1)), (7000, D("0.1"))]
    assert rows[0].reached_at is not None

    events(subscription, [utc(2024, 1, 15)] * 50)
    (second,) = _evaluate(subscription, utc(2024, 1, 15, 12))  # 75.00: level 70.00 crossed
    # The usage so far (75.00), less what the first billed (25.00): 50.00, VAT 5.00.
    second.refresh_from_db()
    assert (second.fees_amount, second.progressive_billing_credit_amount) == (D("75"), D("25"))
    assert (second.sub_total_excluding_taxes_amount, second.taxes_amount, second.total_amount) == (
        D("50"),
        D("5"),
        D("55"),
    )
    assert _evaluate(subscription, utc(2024, 1, 16)) == []  # nothing new: each level is billed once
    assert sorted(AppliedUsageThreshold.objects.values_list("threshold_amount", flat=True)) == [D("20"), D("70")]

    events(subscription, [utc(2024, 1, 20)] * 5)
    period = only_invoice(bill(utc(2024, 2, 1)))
    period.refresh_from_db()
    # January: 80.00 of calls, 75.00 billed progressively: 5.00, VAT 0.50.
    assert (period.fees_amount, period.progressive_billing_credit_amount) == (D("80"), D("75"))
    assert (period.sub_total_excluding_taxes_amount, period.taxes_amount, period.total_amount) == (
        D("5"),
        D("0.5"),
        D("5.5"),
    )

    # February: 80.00 invoiced before, so levels 20 and 70 are behind; the next is 120.00.
    events(subscription, [utc(2024, 2, 3)] * 30)
    assert _evaluate(subscription, utc(2024, 2, 3, 12)) == []  # lifetime 110.00
    events(subscription, [utc(2024, 2, 4)] * 15)
    (third,) = _evaluate(subscription, utc(2024, 2, 4, 12))  # lifetime 125.00: level 120.00
    third.refresh_from_db()
    assert (third.fees_amount, third.progressive_billing_credit_amount, third.total_amount) == (
        D("45"),
        D("0"),
        D("49.5"),
    )
    assert len(_progressive()) == 3


def test_plan_usage_thresholds_through_the_api(api):
    metric("api_calls")
    body = {
        "plan": {
            "name": "P",
            "code": "p",
            "interval": "monthly",
            "amount_cents": 0,
            "amount_currency": "USD",
            "usage_thresholds": [
                {"amount_cents": 5000, "recurring": True},
                {"amount_cents": 1000, "threshold_display_name": "Ten"},
            ],
        }
    }
    answer = api.post("/api/v1/plans", body, format="json")
    assert answer.status_code == 200, answer.json()
    rows = answer.json()["plan"]["usage_thresholds"]
    assert [(r["amount_cents"], r["recurring"], r["threshold_display_name"]) for r in rows] == [
        (1000, False, "Ten"),
        (5000, True, None),
    ]
    two = [{"amount_cents": 1, "recurring": True}, {"amount_cents": 2, "recurring": True}]
    refused = api.put("/api/v1/plans/p", {"plan": {"usage_thresholds": two}}, format="json")
    assert (refused.status_code, refused.json()["error_details"]) == (
        422,
        {"usage_thresholds": ["multiple_recurring_thresholds"]},
    )
    cleared = api.put("/api/v1/plans/p", {"plan": {"usage_thresholds": []}}, format="json").json()
    assert cleared["plan"]["usage_thresholds"] == []
