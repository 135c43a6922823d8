"""Invoices built as rows for the API, PDF and admin tests (the billing run is tested on its own):
one subscription invoice with a subscription fee, a graduated and a standard charge, a coupon and
a 20% tax, with every amount computed by hand below.

    subscription fee                      49.00
    api_calls graduated, 1,500 calls:     0-1,000 free, 500 x 0.002 = 1.00
    storage_gb standard, 12.5 GB x 0.25 = 3.125 -> 3.13 (precise 3.125)
    fees                                  53.13
    coupon "welcome"                     -10.00
    sub total excluding taxes             43.13
    VAT 20% of 43.13 = 8.626           ->  8.63
    sub total including taxes / total     51.76
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from customers.models import Customer
from invoicing.models import (
    Credit,
    Fee,
    FeeAppliedTax,
    FeeType,
    Invoice,
    InvoiceAppliedTax,
    InvoiceStatus,
    InvoiceSubscription,
    InvoicingReason,
)
from plans import services as plan_services
from plans.models import Charge, Plan, Subscription, Tax
from tests.factories.customers import make_customer
from tests.factories.metrics import make_metric
from tests.factories.plans import make_coupon, make_plan, make_subscription, make_tax

_sequence = itertools.count(1)

SUBSCRIPTION_START = datetime(2024, 1, 1, tzinfo=UTC)

GRADUATED = [
    {"from_value": 0, "to_value": 1000, "per_unit_amount": "0", "flat_amount": "0"},
    {"from_value": 1001, "to_value": None, "per_unit_amount": "0.002", "flat_amount": "0"},
]


def catalog() -> tuple[Plan, Tax]:
    plan = Plan.live.filter(code="startup").first()
    if plan is None:
        for code, aggregation, field in (("api_calls", "count_agg", ""), ("storage_gb", "sum_agg", "gb")):
            make_metric(code=code, aggregation_type=aggregation, field_name=field)
        from metrics.models import BillableMetric

        plan = make_plan(
            code="startup",
            charges=[
                {
                    "billable_metric_id": str(BillableMetric.live.get(code="api_calls").pk),
                    "charge_model": "graduated",
                    "properties": {"graduated_ranges": GRADUATED},
                    "invoice_display_name": "API calls",
                },
                {
                    "billable_metric_id": str(BillableMetric.live.get(code="storage_gb").pk),
                    "charge_model": "standard",
                    "properties": {"amount": "0.25"},
                },
            ],
        )
    tax = Tax.objects.filter(code="vat_20").first() or make_tax(code="vat_20", rate="20", name="VAT")
    return plan, tax


def make_invoice(
    *,
    customer: Customer | None = None,
    status: str = InvoiceStatus.FINALIZED,
    issuing_date: date = date(2025, 2, 1),
    **fields: Any,
) -> Invoice:
    """The invoice of the module docstring, for the month before `issuing_date`."""
    plan, tax = catalog()
    sequence = next(_sequence)
    customer = customer or make_customer(external_id=f"cust_{sequence}", currency="USD", name=f"Customer {sequence}")
    subscription = Subscription.objects.filter(customer=customer).first() or make_subscription(
        customer=customer,
        plan=plan,
        external_id=f"sub_{customer.external_id}",
        subscription_at=SUBSCRIPTION_START,
        now=SUBSCRIPTION_START,
    )
    # The month before the issuing date (one invoice per subscription-period, as the database says).
    period_to = datetime(issuing_date.year, issuing_date.month, 1, tzinfo=UTC)
    period_from = (period_to - timedelta(days=1)).replace(day=1)
    finalized = status != InvoiceStatus.DRAFT
    fields.setdefault("number", f"FIX-{sequence:04d}" if finalized else "TOL-DRAFT")
    fields.setdefault("sequential_id", sequence if finalized else None)
    invoice = Invoice.objects.create(
        customer=customer,
        status=status,
        currency="USD",
        issuing_date=issuing_date,
        payment_due_date=issuing_date + timedelta(days=15),
        net_payment_term=15,
        fees_amount=Decimal("53.13"),
        coupons_amount=Decimal("10.00"),
        sub_total_excluding_taxes_amount=Decimal("43.13"),
        taxes_amount=Decimal("8.63"),
        sub_total_including_taxes_amount=Decimal("51.76"),
        total_amount=Decimal("51.76"),
        finalized_at=timezone.now() if finalized else None,
        customer_snapshot={
            "customer": {"name": customer.name, "legal_name": f"{customer.name} Ltd", "city": "Paris"},
            "organization": {"legal_name": "Tollgate SAS", "invoice_footer": "Thank you. Bank: FR76 0000 0000 0000"},
        }
        if finalized
        else {},
        metadata=[{"lago_id": "8f0e8e0e-0000-4000-8000-000000000001", "key": "po", "value": "PO-7"}],
        **fields,
    )
    InvoiceSubscription.objects.create(
        invoice=invoice,
        subscription=subscription,
        invoicing_reason=InvoicingReason.SUBSCRIPTION_PERIODIC,
        from_datetime=period_from,
        to_datetime=period_to,
        charges_from_datetime=period_from,
        charges_to_datetime=period_to,
        timestamp=period_to,
    )
    api_calls, storage = Charge.objects.filter(plan=plan).order_by("created_at")
    common = {"invoice": invoice, "subscription": subscription, "currency": "USD"}
    period = {"from_datetime": period_from, "to_datetime": period_to}
    fees = [
        Fee.objects.create(
            **common,
            **period,
            fee_type=FeeType.SUBSCRIPTION,
            units=1,
            unit_amount=Decimal("49"),
            amount=Decimal("49.00"),
            precise_amount=Decimal("49"),
            precise_coupons_amount=Decimal("10"),
            taxes_amount=Decimal("7.80"),
            taxes_precise_amount=Decimal("7.8"),
            taxes_rate=20,
        ),
        Fee.objects.create(
            **common,
            **period,
            fee_type=FeeType.CHARGE,
            charge=api_calls,
            units=1500,
            events_count=1500,
            unit_amount=Decimal("1") / Decimal("1500"),
            amount=Decimal("1.00"),
            precise_amount=Decimal("1"),
            taxes_amount=Decimal("0.20"),
            taxes_precise_amount=Decimal("0.2"),
            taxes_rate=20,
            amount_details={
                "tiers": [
                    {
                        "from_value": 0,
                        "to_value": 1000,
                        "units": "1000",
                        "per_unit_amount": "0",
                        "flat_amount": "0",
                        "total": "0",
                    },
                    {
                        "from_value": 1001,
                        "to_value": None,
                        "units": "500",
                        "per_unit_amount": "0.002",
                        "flat_amount": "0",
                        "total": "1",
                    },
                ],
                "total": "1",
            },
        ),
        Fee.objects.create(
            **common,
            **period,
            fee_type=FeeType.CHARGE,
            charge=storage,
            units=Decimal("12.5"),
            events_count=3,
            unit_amount=Decimal("0.25"),
            amount=Decimal("3.13"),
            precise_amount=Decimal("3.125"),
            taxes_amount=Decimal("0.63"),
            taxes_precise_amount=Decimal("0.625"),
            taxes_rate=20,
        ),
    ]
    for fee in fees:
        FeeAppliedTax.objects.create(
            fee=fee, tax=tax, tax_code=tax.code, tax_name=tax.name, tax_rate=tax.rate, amount=fee.taxes_precise_amount
        )
    InvoiceAppliedTax.objects.create(
        invoice=invoice,
        tax=tax,
        tax_code=tax.code,
        tax_name=tax.name,
        tax_rate=tax.rate,
        fees_amount=Decimal("43.13"),
        amount=Decimal("8.63"),
    )
    coupon = plan_services.applied_coupon_create(
        customer=customer, coupon=make_coupon(code=f"welcome_{sequence}", name="Welcome")
    )
    Credit.objects.create(invoice=invoice, applied_coupon=coupon, amount=Decimal("10.00"), before_taxes=True)
    return invoice


@pytest.fixture
def invoice(db) -> Invoice:
    return make_invoice()
