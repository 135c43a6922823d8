"""Projected usage (Lago's GET /customers/{id}/projected_usage): the current period's usage
extrapolated to the period's end, as Lago's Fees::ProjectionService does it.

- The period ratio is the days begun so far over the period's days, in the customer's timezone
  (Lago's Utils::Datetime.date_diff_with_timezone, which counts a begun day as a whole one).
- A recurring metric's usage stands until removed: its projection is the current usage.
- Otherwise each fee's units are divided by the ratio and rounded to 2 decimals (Lago's
  ChargeModels::BaseService#projected_units); the charge model prices the projected units
  (standard, graduated, volume, package), while percentage, graduated percentage and dynamic
  charges project their current amount divided by the ratio (Lago's compute_projected_amount).
- Each fee's projection is rounded to the currency's minor unit, then summed.
Pure: it reads the unsaved fees of invoicing.usage and prices nothing from the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from billing_project.money import round_amount
from plans import charge_models

from .models import Fee

ZERO = Decimal(0)
ONE = Decimal(1)
# Priced again on the projected units; the others scale their current amount by the ratio.
UNIT_PRICED_MODELS = ("standard", "graduated", "volume", "package")


@dataclass(frozen=True)
class FeeProjection:
    units: Decimal
    amount: Decimal  # rounded to the currency's minor unit


def period_ratio(*, from_datetime: datetime, to_datetime: datetime, at: datetime, timezone: str) -> Decimal:
    """Days begun since `from_datetime` (the day of `at` counts) over the period's days, within
    [0, 1]; 1 once the period is over, 0 before it starts."""
    if at >= to_datetime:
        return ONE
    if at < from_datetime:
        return ZERO
    zone = ZoneInfo(timezone or "UTC")
    start = from_datetime.astimezone(zone).date()
    total_days = (to_datetime.astimezone(zone).date() - start).days
    days_passed = (at.astimezone(zone).date() - start).days + 1
    if total_days <= 0:
        return ONE
    return min(max(Decimal(days_passed) / Decimal(total_days), ZERO), ONE)


def fee_projection(fee: Fee, *, ratio: Decimal, currency: str) -> FeeProjection:
    """The projection of one current-usage fee (a charge fee, unsaved or not)."""
    charge = fee.charge
    assert charge is not None  # projections are of charge fees
    if charge.billable_metric.recurring:
        return FeeProjection(units=fee.units, amount=fee.amount)
    if fee.units == 0 and fee.amount == 0 or not (ZERO < ratio <= ONE):
        return FeeProjection(units=ZERO, amount=ZERO)
    units = max((fee.units / ratio).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), ZERO)
    if charge.charge_model in UNIT_PRICED_MODELS:
        properties = charge_models.properties_for(charge, fee.charge_filter)
        amount = charge_models.compute(charge.charge_model, properties, units=units).amount
    else:
        amount = fee.precise_amount / ratio
    return FeeProjection(units=units, amount=round_amount(max(amount, ZERO), currency))


def fees_projection(fees: list[Fee], *, ratio: Decimal, currency: str) -> FeeProjection:
    """The sum of each fee's projection (a charge's, a filter's or a group's fees)."""
    projections = [fee_projection(fee, ratio=ratio, currency=currency) for fee in fees]
    return FeeProjection(
        units=sum((p.units for p in projections), ZERO), amount=sum((p.amount for p in projections), ZERO)
    )
