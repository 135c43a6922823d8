"""Minimum commitment true-up (Lago's Commitments::Minimum::CalculateTrueUpFeeService): at a
period's end, when the period's fees fall short of the plan's minimum commitment, a fee of type
`commitment` bills the difference. A step of the period run (invoice_create_for_period), before
progressive billing credits, coupons and taxes, as Lago orders it.

- The commitment is prorated like the subscription fee: the charges period's days over the full
  period's days (Lago's Commitments::CalculateProratedCoefficientService).
- The period's fees: those of this invoice for the period (subscription fee, charges), plus the
  period's fees on other invoices that are not voided (a pay-in-advance plan's subscription fee
  billed at the period's start, pay-in-advance charges billed event by event).
- Skipped for plans billing charges monthly within a longer interval (Lago splits the
  commitment over such periods; not done here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from plans.commitments import Commitment, plan_commitment
from plans.models import Subscription

from . import billing
from .models import Fee, FeeType, InvoiceStatus, InvoicingReason
from .windows import BillingWindow

ZERO = Decimal(0)
BILLING_REASONS = (
    InvoicingReason.SUBSCRIPTION_PERIODIC,
    InvoicingReason.SUBSCRIPTION_TERMINATING,
    InvoicingReason.UPGRADING,
)


def plans_commitments(plans: Iterable[Any]) -> dict[Any, Commitment | None]:
    """{plan id: its plan_commitment} for many plans in one query (a billing run's chunk): an
    override plan (one level deep, plans.overrides) without its own has its parent's."""
    by_pk = {plan.pk: plan for plan in plans}
    ids = set(by_pk) | {plan.parent_id for plan in by_pk.values() if plan.parent_id is not None}
    rows = {row.plan_id: row for row in Commitment.objects.filter(plan_id__in=ids)}
    return {pk: rows.get(pk) or rows.get(plan.parent_id) for pk, plan in by_pk.items()}


def true_up_fee(
    *,
    subscription: Subscription,
    window: BillingWindow,
    fees: Sequence[Fee],
    by_plan: Mapping[Any, Commitment | None] | None = None,
) -> Fee | None:
    """The unsaved `commitment` fee of `window`, or None when the fees reach the commitment.
    `by_plan`: the chunk's plans_commitments (no query here), else the plan's is read."""
    if by_plan is not None and subscription.plan_id in by_plan:
        commitment = by_plan[subscription.plan_id]
    else:
        commitment = plan_commitment(subscription.plan)
    period = window.charges_period
    if commitment is None or commitment.amount <= 0 or period is None or window.reason not in BILLING_REASONS:
        return None
    if subscription.plan.bill_charges_monthly and subscription.plan.interval != "monthly":
        return None
    currency = billing.plan_currency(subscription)
    start = period.from_datetime
    here = sum((fee.precise_amount for fee in fees if fee.from_datetime == start), ZERO)
    elsewhere = (
        Fee.objects.filter(
            subscription=subscription,
            fee_type__in=(FeeType.SUBSCRIPTION, FeeType.CHARGE, FeeType.FIXED_CHARGE),
            from_datetime=start,
            invoice__isnull=False,
        )
        .exclude(invoice__status=InvoiceStatus.VOIDED)
        .aggregate(total=Sum("precise_amount"))["total"]
        or ZERO
    )
    billed = here + elsewhere
    committed = commitment.amount * period.fraction
    if billed >= committed:
        return None
    precise = committed - billed
    return billing.new_fee(
        subscription,
        currency,
        precise,
        fee_type=FeeType.COMMITMENT,
        units=Decimal(1),
        unit_amount=precise,
        from_datetime=period.from_datetime,
        to_datetime=period.to_datetime,
        invoice_display_name=commitment.invoice_display_name or "Minimum commitment true-up",
        amount_details={
            "commitment_amount": billing.decimal_text(committed),
            "fees_amount": billing.decimal_text(billed),
        },
    )
