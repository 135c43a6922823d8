"""Lifetime usage (Lago's GET/PUT /subscriptions/{id}/lifetime_usage): what a subscription's
usage has cost since it began, across plan changes (its external id):

    total = historical (given through the API) + invoiced + current

- invoiced: the charge fees of its invoices (drafts and finalized, never voided ones) for
  charges periods before the current one (Lago's LifetimeUsages::CalculateService sums the
  charge fees of subscription invoices; counting only earlier periods keeps a pay-in-advance
  fee of this period, already in the current usage, from counting twice). Progressive billing
  invoices bill the current period's usage, so they are not counted (as Lago).
- current: the current usage's amount before taxes (invoicing.usage, the billing code).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Sum

from billing_project.money import round_amount
from plans.models import Subscription

from ..models import Fee, FeeType, InvoiceStatus, InvoiceType
from ..usage import CustomerUsage, customer_usage
from .models import LifetimeUsage

ZERO = Decimal(0)


@dataclass
class LifetimeUsageFigures:
    row: LifetimeUsage
    subscription: Subscription
    currency: str
    historical_amount: Decimal
    invoiced_amount: Decimal
    current_amount: Decimal
    usage: CustomerUsage

    @property
    def total_amount(self) -> Decimal:
        return self.historical_amount + self.invoiced_amount + self.current_amount


def lifetime_usage_row(*, external_subscription_id: str) -> LifetimeUsage:
    """The subscription's row, made on first use (two racing first uses make one: the unique
    external id decides, the loser reads the winner's row)."""
    row = LifetimeUsage.objects.filter(external_subscription_id=external_subscription_id).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            return LifetimeUsage.objects.create(external_subscription_id=external_subscription_id)
    except IntegrityError:
        return LifetimeUsage.objects.get(external_subscription_id=external_subscription_id)


def invoiced_usage_amount(*, external_subscription_id: str, before: datetime) -> Decimal:
    """The charge fees invoiced for charges periods that began before `before`."""
    total = Fee.objects.filter(
        subscription__external_id=external_subscription_id,
        fee_type=FeeType.CHARGE,
        invoice__invoice_type=InvoiceType.SUBSCRIPTION,
        invoice__status__in=(InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED),
        from_datetime__lt=before,
    ).aggregate(total=Sum("amount"))["total"]
    return total or ZERO


def lifetime_usage_compute(
    *, subscription: Subscription, at: datetime, usage: CustomerUsage | None = None
) -> LifetimeUsageFigures:
    """The lifetime usage of `subscription` at `at` (`usage`: its current usage, if read already)."""
    usage = usage or customer_usage(subscription=subscription, at=at)
    row = lifetime_usage_row(external_subscription_id=subscription.external_id)
    currency = usage.currency
    return LifetimeUsageFigures(
        row=row,
        subscription=subscription,
        currency=currency,
        historical_amount=row.historical_usage_amount,
        invoiced_amount=invoiced_usage_amount(
            external_subscription_id=subscription.external_id, before=usage.from_datetime
        ),
        current_amount=usage.amount,
        usage=usage,
    )


def lifetime_usage_update(*, subscription: Subscription, historical_usage_amount: Decimal) -> LifetimeUsage:
    """Lago's PUT: set the usage before Tollgate (rounded to the currency's minor unit)."""
    currency = str(subscription.plan.amount.currency)
    row = lifetime_usage_row(external_subscription_id=subscription.external_id)
    with transaction.atomic():
        row = LifetimeUsage.objects.select_for_update().get(pk=row.pk)
        row.historical_usage_amount = round_amount(historical_usage_amount, currency)
        row.save(update_fields=["historical_usage_amount", "updated_at"])
    return row
