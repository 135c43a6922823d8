"""Current usage (Lago's GET /customers/{id}/current_usage): the charges of the usage period
containing `at`, priced by the very code that bills them (billing.charge_fees), taxed as an
invoice would be (before coupons, which only an invoice consumes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from plans import periods
from plans.models import Charge, ChargeFilter, Subscription

from . import billing, totals
from .models import Fee

ZERO = Decimal(0)


@dataclass
class FilterUsage:
    charge_filter: ChargeFilter | None  # None: events matching none of the charge's filters
    values: dict[str, list[str]]
    invoice_display_name: str
    units: Decimal
    events_count: int
    amount: Decimal  # rounded to the currency


@dataclass
class GroupUsage:
    grouped_by: dict[str, Any]
    units: Decimal
    events_count: int
    amount: Decimal


@dataclass
class ChargeUsage:
    charge: Charge
    units: Decimal
    events_count: int
    amount: Decimal
    filters: list[FilterUsage] = field(default_factory=list)
    grouped_usage: list[GroupUsage] = field(default_factory=list)
    fees: list[Fee] = field(default_factory=list)

    @property
    def billable_metric(self) -> Any:
        return self.charge.billable_metric


@dataclass
class CustomerUsage:
    subscription: Subscription
    from_datetime: datetime
    to_datetime: datetime
    issuing_date: date
    currency: str
    amount: Decimal
    taxes_amount: Decimal
    total_amount: Decimal
    charges_usage: list[ChargeUsage]
    # Every unsaved fee of the period, as the period's invoice would hold them.
    fees: list[Fee] = field(default_factory=list)


def customer_usage(*, subscription: Subscription, at: datetime) -> CustomerUsage:
    """The usage of `subscription`'s current charges period (the one containing `at`). A
    subscription loaded by billing.with_billing_relations (it carries `billing_timezone`) is used
    as it is; any other is loaded again with those relations."""
    if not hasattr(subscription, "billing_timezone"):
        subscription = billing.with_billing_relations(Subscription.objects.filter(pk=subscription.pk)).get()
    period = periods.subscription_charges_period(subscription, at)
    if subscription.terminated_at is not None and subscription.terminated_at < period.to_datetime:
        period = periods.clip_to(period, subscription.terminated_at, periods.subscription_timezone(subscription))
    currency = billing.plan_currency(subscription)
    usage = billing.DirectUsage()
    charges_usage = []
    all_fees: list[Fee] = []
    for charge in billing.billable_charges(subscription):
        fees = billing.charge_fees(subscription, charge, period, usage=usage, with_true_up=False)
        all_fees.extend(fees)
        row = ChargeUsage(
            charge=charge,
            units=sum((fee.units for fee in fees), ZERO),
            events_count=sum(fee.events_count for fee in fees),
            amount=sum((fee.amount for fee in fees), ZERO),
            fees=fees,
        )
        if any(fee.charge_filter_id for fee in fees):
            for fee in fees:
                row.filters.append(
                    FilterUsage(
                        charge_filter=fee.charge_filter,
                        values=dict(fee.charge_filter.values) if fee.charge_filter else {},
                        invoice_display_name=fee.charge_filter.invoice_display_name if fee.charge_filter else "",
                        units=fee.units,
                        events_count=fee.events_count,
                        amount=fee.amount,
                    )
                )
        for fee in fees:
            if fee.grouped_by:
                row.grouped_usage.append(GroupUsage(fee.grouped_by, fee.units, fee.events_count, fee.amount))
        charges_usage.append(row)
    resolver = totals.TaxResolver(subscription.customer)
    taxes = totals.taxes_compute(invoice=None, fees=all_fees, resolver=resolver, currency=currency)
    amount = sum((fee.amount for fee in all_fees), ZERO)
    tz = periods.subscription_timezone(subscription)
    return CustomerUsage(
        subscription=subscription,
        from_datetime=period.from_datetime,
        to_datetime=period.to_datetime,
        issuing_date=period.to_datetime.astimezone(ZoneInfo(tz)).date(),
        currency=currency,
        amount=amount,
        taxes_amount=taxes.amount,
        total_amount=amount + taxes.amount,
        charges_usage=charges_usage,
        fees=all_fees,
    )
