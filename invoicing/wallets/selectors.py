"""Reads of the wallets: the usage not invoiced yet that the ongoing balance subtracts."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from plans.models import Subscription, SubscriptionStatus

from ..models import Invoice, InvoiceStatus, InvoiceType

ZERO = Decimal(0)


def customer_ongoing_usage(*, customer_id: Any, now: datetime) -> dict[str, Decimal]:
    """Per currency: the current usage of the customer's active subscriptions (with taxes),
    plus the totals of its draft subscription invoices. The usage is aggregated in SQL, a few
    queries per charge, never one per event."""
    from ..usage import customer_usage

    totals: dict[str, Decimal] = {}
    for currency, total in (
        Invoice.objects.filter(
            customer_id=customer_id, status=InvoiceStatus.DRAFT, invoice_type=InvoiceType.SUBSCRIPTION
        )
        .values_list("currency")
        .annotate(total=Sum("total_amount"))
    ):
        totals[currency] = totals.get(currency, ZERO) + (total or ZERO)
    for subscription in Subscription.objects.filter(customer_id=customer_id, status=SubscriptionStatus.ACTIVE):
        usage = customer_usage(subscription=subscription, at=now)
        totals[usage.currency] = totals.get(usage.currency, ZERO) + usage.total_amount
    return totals
