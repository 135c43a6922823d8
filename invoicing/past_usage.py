"""Past usage (Lago's GET /customers/{id}/past_usage): one usage period per billed charges
period of a subscription, newest first, read from its invoice (Lago's PastUsageQuery): the
invoice's fees amount and taxes, and its charge fees of that subscription."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet, Sum

from customers.models import Customer
from metrics.models import BillableMetric

from .models import Fee, FeeType, InvoiceSubscription, InvoicingReason

ZERO = Decimal(0)


@dataclass
class UsagePeriod:
    invoice_subscription: InvoiceSubscription
    taxes_amount: Decimal  # every fee's taxes on the invoice, as Lago sums them
    fees: list[Fee]  # the charge fees of the subscription (of the metric, when asked)


def past_usage_periods(
    *, customer: Customer, external_subscription_id: str, periods_count: int | None = None
) -> QuerySet[InvoiceSubscription]:
    """The billed charges periods of `external_subscription_id`, newest first (every plan the
    external id was on). Pay-in-advance event and progressive billing invoices are not periods: left out."""
    rows = (
        InvoiceSubscription.objects.filter(
            invoice__customer=customer,
            subscription__external_id=external_subscription_id,
            charges_from_datetime__isnull=False,
        )
        .exclude(invoicing_reason__in=(InvoicingReason.IN_ADVANCE_CHARGE, InvoicingReason.PROGRESSIVE_BILLING))
        .select_related("invoice", "subscription")
        .order_by("-charges_from_datetime", "-created_at")
    )
    if periods_count is not None:
        rows = rows[:periods_count]
    return rows


def usage_periods_for(
    rows: Sequence[InvoiceSubscription], *, billable_metric: BillableMetric | None = None
) -> list[UsagePeriod]:
    """A page of periods with their fees, in two queries whatever the page's size."""
    invoice_ids = [row.invoice_id for row in rows]
    fees = (
        Fee.objects.filter(invoice_id__in=invoice_ids, fee_type=FeeType.CHARGE, charge__isnull=False)
        .select_related("charge__billable_metric", "charge_filter", "subscription")
        .order_by("created_at", "id")
    )
    if billable_metric is not None:
        fees = fees.filter(charge__billable_metric=billable_metric)
    by_invoice: dict[Any, list[Fee]] = {}
    for fee in fees:
        by_invoice.setdefault(fee.invoice_id, []).append(fee)
    taxes = dict(
        Fee.objects.filter(invoice_id__in=invoice_ids)
        .values("invoice_id")
        .annotate(total=Sum("taxes_amount"))
        .values_list("invoice_id", "total")
    )
    return [
        UsagePeriod(
            invoice_subscription=row,
            taxes_amount=taxes.get(row.invoice_id) or ZERO,
            fees=[
                fee
                for fee in by_invoice.get(row.invoice_id, [])
                if fee.subscription is not None and fee.subscription.external_id == row.subscription.external_id
            ],
        )
        for row in rows
    ]
