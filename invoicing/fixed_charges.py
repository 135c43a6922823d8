"""Fixed charge fees (Lago's Fees::FixedChargeService; fee type `fixed_charge`): a step of the
period run (invoice_create_for_period), before the minimum commitment (whose true-up counts
them) and coupons.

- Which period: an in-advance fixed charge is billed with the plan's in-advance fee, for the
  period that fee covers; one in arrears for the period that ended (the invoice's usage period).
- Units: the subscription's units as they stood over the period (plans.fixed_charges, a change
  takes effect at its instant). Not prorated: the units in force when the fee is billed (at the
  period's start in advance, at its end in arrears), priced whole. Prorated: each units segment
  weighs its local days over the full period's days; the model prices the weighted units (a
  partial first or last period is prorated likewise).
- A change of units taking effect mid-period on a prorated in-advance charge is billed at once
  for the days left (`units_change_invoice`): price(new) - price(old), times days left / full
  days, when positive (a decrease is not refunded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from plans import charge_models, periods
from plans.fixed_charges import (
    FixedCharge,
    FixedChargeUnits,
    subscription_fixed_charges,
    units_at,
    units_timeline,
)
from plans.models import Subscription

from . import billing
from .models import Fee, FeeType, Invoice, InvoicingReason
from .windows import BillingWindow

ZERO = Decimal(0)
ACTOR = "system:fixed_charges"


def _local_days(start: datetime, end: datetime, tz: str) -> int:
    zone = ZoneInfo(tz or "UTC")
    return (end.astimezone(zone).date() - start.astimezone(zone).date()).days


def _price(fixed_charge: FixedCharge, units: Decimal) -> charge_models.ChargeResult:
    return charge_models.compute(fixed_charge.charge_model, fixed_charge.properties, units=units)


def priced_units(subscription: Subscription, fixed_charge: FixedCharge, period: periods.Period) -> Decimal:
    """The units an invoice prices for `period` (module docstring)."""
    if not fixed_charge.prorated:
        at = period.from_datetime if fixed_charge.pay_in_advance else period.to_datetime - billing_tick()
        return units_at(subscription, fixed_charge, at)
    tz = periods.subscription_timezone(subscription)
    segments = units_timeline(subscription, fixed_charge, period.from_datetime, period.to_datetime)
    weighted = ZERO
    for index, (start, units) in enumerate(segments):
        end = segments[index + 1][0] if index + 1 < len(segments) else period.to_datetime
        weighted += units * Decimal(_local_days(start, end, tz))
    return weighted / Decimal(period.full_days)


def billing_tick() -> Any:
    from datetime import timedelta

    return timedelta(microseconds=1)


def _fee(
    subscription: Subscription, fixed_charge: FixedCharge, period: periods.Period, units: Decimal, **details: Any
) -> Fee:
    currency = billing.plan_currency(subscription)
    result = _price(fixed_charge, units)
    return billing.new_fee(
        subscription,
        currency,
        result.amount,
        fee_type=FeeType.FIXED_CHARGE,
        fixed_charge=fixed_charge,
        add_on=fixed_charge.add_on,
        units=units,
        unit_amount=result.unit_amount,
        pay_in_advance=fixed_charge.pay_in_advance,
        from_datetime=period.from_datetime,
        to_datetime=period.to_datetime,
        invoice_display_name=fixed_charge.invoice_display_name
        or fixed_charge.add_on.invoice_display_name
        or fixed_charge.add_on.name,
        amount_details={**(result.details or {}), **details},
    )


def plans_fixed_charges(plans: Iterable[Any]) -> dict[Any, list[FixedCharge]]:
    """{plan id: the fixed charges its subscriptions bill} for many plans in one query (a billing
    run's chunk), with subscription_fixed_charges' rule: an override plan (a child plan: overrides
    are one level deep, plans.overrides) without its own bills its parent's."""
    by_pk = {plan.pk: plan for plan in plans}
    ids = set(by_pk) | {plan.parent_id for plan in by_pk.values() if plan.parent_id is not None}
    rows: dict[Any, list[FixedCharge]] = {pk: [] for pk in ids}
    for row in FixedCharge.objects.filter(plan_id__in=ids, deleted_at__isnull=True).select_related("add_on"):
        rows[row.plan_id].append(row)  # the model's ordering: the plan's order
    by_plan: dict[Any, list[FixedCharge]] = {}
    for pk, plan in by_pk.items():
        own = rows[pk]
        by_plan[pk] = rows[plan.parent_id] if plan.parent_id is not None and not own else own
    return by_plan


def fixed_charge_fees(
    *, subscription: Subscription, window: BillingWindow, by_plan: Mapping[Any, list[FixedCharge]] | None = None
) -> list[Fee]:
    """The fixed charge fees of `window`, unsaved, in the plan's order. `by_plan`: the chunk's
    plans_fixed_charges (no query here), else the subscription's are read."""
    fees = []
    rows = by_plan[subscription.plan_id] if by_plan is not None and subscription.plan_id in by_plan else None
    for fixed_charge in rows if rows is not None else subscription_fixed_charges(subscription):
        period = window.fee_period if fixed_charge.pay_in_advance else window.charges_period
        if period is None:
            continue
        if not fixed_charge.pay_in_advance and window.reason == InvoicingReason.SUBSCRIPTION_STARTING:
            continue
        fees.append(_fee(subscription, fixed_charge, period, priced_units(subscription, fixed_charge, period)))
    return fees


def units_change_invoice(
    *, subscription: Subscription, change: FixedChargeUnits, previous_units: Decimal, now: datetime
) -> Invoice | None:
    """Bill at once, for the days left, a prorated in-advance charge's units increase."""
    from customers.models import Organization

    from . import services, windows

    fixed_charge = change.fixed_charge
    if not (fixed_charge.pay_in_advance and fixed_charge.prorated):
        return None
    period = periods.subscription_period(subscription, change.effective_at)
    tz = periods.subscription_timezone(subscription)
    days_left = _local_days(change.effective_at, period.to_datetime, tz)
    if change.effective_at.astimezone(ZoneInfo(tz)).time() != datetime.min.time():
        days_left += 1  # the day of the change counts, as a begun day
    increment = _price(fixed_charge, change.units).amount - _price(fixed_charge, previous_units).amount
    if increment <= 0 or days_left <= 0:
        return None
    fraction = Decimal(min(days_left, period.full_days)) / Decimal(period.full_days)
    currency = billing.plan_currency(subscription)
    remaining = periods.Period(
        from_datetime=change.effective_at,
        to_datetime=period.to_datetime,
        full_from_datetime=period.full_from_datetime,
        full_to_datetime=period.full_to_datetime,
        days=days_left,
        full_days=period.full_days,
    )
    fee = billing.new_fee(
        subscription,
        currency,
        increment * fraction,
        fee_type=FeeType.FIXED_CHARGE,
        fixed_charge=fixed_charge,
        add_on=fixed_charge.add_on,
        units=change.units - previous_units,
        unit_amount=increment * fraction / (change.units - previous_units) if change.units != previous_units else ZERO,
        pay_in_advance=True,
        from_datetime=remaining.from_datetime,
        to_datetime=remaining.to_datetime,
        invoice_display_name=fixed_charge.invoice_display_name or fixed_charge.add_on.name,
        amount_details={
            "units_before": billing.decimal_text(previous_units),
            "units_after": billing.decimal_text(change.units),
            "days": days_left,
            "full_days": period.full_days,
        },
    )
    return services.invoice_create_with_fees(
        subscription=subscription,
        window=windows.in_advance_charge_window(subscription, now),
        fees=[fee],
        actor=ACTOR,
        context=services.RunContext(organization=Organization.current()),
        now=now,
        payload={"fixed_charge": fixed_charge.code},
    )
