"""A recurring metric: a late seat changes every later period. Seats at 5.00 each; seat a added
January 5. January and February each bill 1 seat (5.00). A seat b dated January 20 arrives in
March: January and February both had 2 seats, so each gets its own correction of 5.00, oldest
first, each carrying its own period's dates."""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing.models import Invoice, InvoiceType
from tests.factories.invoicing import bill, only_invoice, subscribe, utc
from tests.factories.metrics import make_events
from tests.factories.plans import make_plan, metric

from .conftest import rerate, set_policy

pytestmark = pytest.mark.django_db

D = Decimal


def _seat(subscription, user, day):
    make_events(
        [
            {
                "external_subscription_id": subscription.external_id,
                "code": "seats",
                "timestamp": utc(2024, 1, day, 12),
                "properties": {"user": user},
            }
        ]
    )


def test_a_late_seat_corrects_every_later_period_oldest_first():
    set_policy("correct")
    seats = metric("seats", aggregation_type="unique_count_agg", field_name="user", recurring=True)
    plan = make_plan(
        amount_cents=0,
        charges=[{"billable_metric_id": str(seats.pk), "charge_model": "standard", "properties": {"amount": "5"}}],
    )
    subscription = subscribe(plan=plan)
    _seat(subscription, "a", 5)
    january = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    february = only_invoice(bill(utc(2024, 3, 1, 0, 10)))
    assert (january.fees_amount, february.fees_amount) == (D("5.00"), D("5.00"))

    _seat(subscription, "b", 20)
    summary = rerate(utc(2024, 3, 1, 1))
    assert summary.corrections == 2, summary
    corrections = list(Invoice.objects.filter(invoice_type=InvoiceType.CORRECTION).order_by("created_at"))
    assert [c.corrected_invoice_id for c in corrections] == [january.pk, february.pk]
    assert [c.fees_amount for c in corrections] == [D("5.00"), D("5.00")]
    january_fee, february_fee = (c.fees.get() for c in corrections)
    assert january_fee.from_datetime == utc(2024, 1, 1) and february_fee.from_datetime == utc(2024, 2, 1)
    assert rerate(utc(2024, 3, 1, 1)).corrections == 0
