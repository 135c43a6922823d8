"""Minimum commitment true-up: worked amounts, computed by hand. January 2024 has 31 days.

Plan "committed": 10.00 a month in arrears, api_calls at 0.50 each, a minimum commitment of
50.00 (Lago's Commitments::Minimum::CalculateTrueUpFeeService: the commitment less the
period's fees; before coupons and taxes, as Lago's invoice orders them).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing.models import FeeType
from plans.commitments import plan_minimum_commitment_set
from plans.services import applied_coupon_create
from tests.factories.customers import make_customer
from tests.factories.invoicing import amounts, bill, events, only_invoice, subscribe, utc
from tests.factories.plans import make_coupon, make_plan, make_tax, metric

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def plan(db):
    plan = make_plan(
        code="committed",
        amount_cents=1000,
        charges=[
            {
                "billable_metric_id": str(metric("api_calls").pk),
                "charge_model": "standard",
                "properties": {"amount": "0.5"},
            }
        ],
    )
    plan_minimum_commitment_set(plan=plan, data={"amount_cents": 5000, "invoice_display_name": "Commitment"})
    return plan


def _true_up(invoice):
    return [fee for fee in invoice.fees.all() if fee.fee_type == FeeType.COMMITMENT]


def test_true_up_before_coupons_and_taxes(plan):
    """10.00 + 20 calls x 0.50 = 20.00 of fees: a true-up of 30.00 makes 50.00; the coupon takes
    5.00 of it (45.00), VAT 20% 9.00: 54.00."""
    plan.taxes.add(make_tax(code="vat", rate="20"))
    customer = make_customer(external_id="c1")
    applied_coupon_create(customer=customer, coupon=make_coupon(code="five", amount_cents=500))
    subscription = subscribe(plan=plan, customer=customer)
    events(subscription, [utc(2024, 1, 10)] * 20)

    invoice = only_invoice(bill(utc(2024, 2, 1)))

    (fee,) = _true_up(invoice)
    assert (fee.amount, fee.invoice_display_name) == (D("30.00"), "Commitment")
    assert amounts(invoice) == {
        "fees_amount": D("50"),
        "coupons_amount": D("5"),
        "sub_total_excluding_taxes_amount": D("45"),
        "taxes_amount": D("9"),
        "sub_total_including_taxes_amount": D("54"),
        "credit_notes_amount": D("0"),
        "total_amount": D("54"),
    }


def test_true_up_is_prorated_with_the_period(plan):
    """From Jan 16: 16 of 31 days. Fee 10 x 16/31 = 5.16129... -> 5.16; commitment 50 x 16/31 =
    25.80645...; true-up 25.80645... - 5.16129... = 20.64516... -> 20.65."""
    subscription = subscribe(plan=plan, start=utc(2024, 1, 16))
    invoice = only_invoice(bill(utc(2024, 2, 1)))
    (fee,) = _true_up(invoice)
    assert fee.amount == D("20.65")
    assert invoice.fees_amount == D("25.81")
    assert subscription.pk


def test_no_true_up_when_fees_reach_the_commitment(plan):
    subscription = subscribe(plan=plan)
    events(subscription, [utc(2024, 1, 10)] * 80)  # 10.00 + 40.00 = 50.00
    invoice = only_invoice(bill(utc(2024, 2, 1)))
    assert _true_up(invoice) == []
    assert invoice.fees_amount == D("50")


def test_minimum_commitment_through_the_api(api):
    body = {
        "plan": {
            "name": "C",
            "code": "c",
            "interval": "monthly",
            "amount_cents": 0,
            "amount_currency": "USD",
            "minimum_commitment": {"amount_cents": 12000, "invoice_display_name": "Floor"},
        }
    }
    answer = api.post("/api/v1/plans", body, format="json")
    assert answer.status_code == 200, answer.json()
    commitment = answer.json()["plan"]["minimum_commitment"]
    assert (commitment["amount_cents"], commitment["commitment_type"], commitment["plan_code"]) == (
        12000,
        "minimum_commitment",
        "c",
    )
    bad = api.put("/api/v1/plans/c", {"plan": {"minimum_commitment": {"amount_cents": -1}}}, format="json")
    assert bad.status_code == 422
    removed = api.put("/api/v1/plans/c", {"plan": {"minimum_commitment": None}}, format="json").json()
    assert removed["plan"]["minimum_commitment"] is None
