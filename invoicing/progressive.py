"""Progressive billing (Lago's premium, free here): when a subscription's lifetime usage crosses
one of its plan's usage thresholds mid-period, a `progressive_billing` invoice bills the
period's usage so far; the period's later invoices deduct what was billed already.

- Crossed levels: as usage alerts (monitoring.evaluation.crossed_values) over the thresholds in
  minor units, against the lifetime total (historical + invoiced + current); a level at or below
  what was billed before this period (historical + invoiced) was passed already (Lago's
  LifetimeUsages::UsageThresholds::CheckService). Each level is billed once: the
  AppliedUsageThreshold rows are unique per (threshold, external subscription id, level).
- The invoice (Lago's Invoices::ProgressiveBillingService) holds the fees of the period's
  usage so far of the plan's invoiceable charges billed in arrears, and deducts, fee by fee
  (charge, filter, group), what the period's latest progressive billing invoice billed
  (Lago's Credits::ProgressiveBillingService: before taxes, each fee's share kept in
  precise_coupons_amount so taxes apply to the rest). Then coupons, taxes, credit notes and
  prepaid credits (wallets), finalized at once.
- The period's own invoice (invoice_create_for_period) deducts the same way:
  `period_credit_apply`, a step before coupons.
Not done (noted in the README): a credit note when the period's final usage is below what was
billed progressively (Lago's CreditNotes::CreateFromProgressiveBillingInvoice).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from billing_project.money import decimal_places
from customers.models import Organization
from plans import periods
from plans.models import Subscription, UsageThreshold

from . import windows
from .models import (
    AppliedUsageThreshold,
    Fee,
    FeeType,
    Invoice,
    InvoiceStatus,
    InvoiceSubscription,
    InvoiceType,
    InvoicingReason,
)

ZERO = Decimal(0)
ACTOR = "system:progressive_billing"


def watched_subscriptions_q() -> Q:
    """Subscriptions whose plan (or, for an override plan, its parent) has live usage
    thresholds (for the activity recording)."""
    live = UsageThreshold.objects.filter(deleted_at__isnull=True)
    return Q(Exists(live.filter(plan_id=OuterRef("plan_id")))) | Q(
        Exists(live.filter(plan_id=OuterRef("plan__parent_id")))
    )


def applicable_thresholds(subscription: Subscription) -> list[UsageThreshold]:
    """The plan's thresholds; an override plan without its own has its parent's."""
    rows = list(UsageThreshold.objects.filter(plan_id=subscription.plan_id, deleted_at__isnull=True))
    parent_id = subscription.plan.parent_id
    if not rows and parent_id is not None:
        rows = list(UsageThreshold.objects.filter(plan_id=parent_id, deleted_at__isnull=True))
    return rows


def has_thresholds(subscription: Subscription) -> bool:
    return bool(applicable_thresholds(subscription))


def _levels(
    thresholds: Sequence[UsageThreshold], total_cents: Decimal, scale: Decimal
) -> list[tuple[UsageThreshold, Decimal]]:
    """(threshold, level in minor units) of every level at or below `total_cents`."""
    from .monitoring.evaluation import crossed_values
    from .monitoring.models import AlertThreshold

    fixed = {t.amount * scale: t for t in thresholds if not t.recurring}
    recurring = next((t for t in thresholds if t.recurring), None)
    as_alert = [AlertThreshold(value=t.amount * scale, recurring=t.recurring) for t in thresholds]
    found = []
    for value in crossed_values(as_alert, total_cents):
        threshold = fixed.get(value) or recurring
        if threshold is not None:
            found.append((threshold, value))
    return found


def crossed_levels(
    *, thresholds: Sequence[UsageThreshold], billed_before_cents: Decimal, total_cents: Decimal, scale: Decimal
) -> list[tuple[UsageThreshold, Decimal]]:
    """The levels newly within reach: at or below the total, above what was billed before."""
    passed = {value for _, value in _levels(thresholds, billed_before_cents, scale)}
    return [(threshold, value) for threshold, value in _levels(thresholds, total_cents, scale) if value not in passed]


def _latest_progressive_invoice(subscription: Subscription, charges_from: datetime) -> Invoice | None:
    """The period's latest finalized progressive billing invoice (each one bills the whole
    period so far, so the latest holds everything billed progressively)."""
    return (
        Invoice.objects.filter(
            invoice_type=InvoiceType.PROGRESSIVE_BILLING,
            status=InvoiceStatus.FINALIZED,
            invoice_subscriptions__subscription__external_id=subscription.external_id,
            invoice_subscriptions__charges_from_datetime=charges_from,
        )
        .order_by("-created_at")
        .prefetch_related("fees")
        .first()
    )


def _fee_key(fee: Fee) -> tuple[Any, ...]:
    return (fee.charge_id, fee.charge_filter_id, tuple(sorted((fee.grouped_by or {}).items())))


def credit_apply(*, invoice: Invoice, fees: Sequence[Fee], billed: Invoice | None) -> Decimal:
    """Deduct `billed`'s charge fees from the matching fees (never more than a fee's amount),
    as their precise_coupons_amount; the sum is the invoice's progressive billing credit."""
    invoice.progressive_billing_credit_amount = ZERO
    if billed is None:
        return ZERO
    already: dict[tuple[Any, ...], Decimal] = {}
    for fee in billed.fees.all():
        if fee.fee_type == FeeType.CHARGE:
            key = _fee_key(fee)
            already[key] = already.get(key, ZERO) + fee.amount
    credit = ZERO
    for fee in fees:
        if fee.fee_type != FeeType.CHARGE:
            continue
        share = min(already.pop(_fee_key(fee), ZERO), fee.amount - fee.precise_coupons_amount)
        if share > 0:
            fee.precise_coupons_amount += share
            credit += share
    invoice.progressive_billing_credit_amount = credit
    return credit


def progressively_billed_periods(external_ids: Iterable[str]) -> set[tuple[str, datetime]]:
    """(external subscription id, charges from) of every period with a finalized progressive
    billing invoice, for many subscriptions in one query (a billing run's chunk)."""
    rows = InvoiceSubscription.objects.filter(
        invoice__invoice_type=InvoiceType.PROGRESSIVE_BILLING,
        invoice__status=InvoiceStatus.FINALIZED,
        subscription__external_id__in=list(set(external_ids)),
    ).values_list("subscription__external_id", "charges_from_datetime")
    return {(external_id, start) for external_id, start in rows if start is not None}


def period_credit_apply(
    *,
    invoice: Invoice,
    subscription: Subscription,
    window: windows.BillingWindow,
    fees: Sequence[Fee],
    billed_periods: set[tuple[str, datetime]] | None = None,
) -> Decimal:
    """The period's invoice deducts what its progressive billing invoices billed (a step of
    invoice_create_for_period, before coupons). `billed_periods`: the chunk's
    progressively_billed_periods; a period not in it has nothing to deduct (no query)."""
    if window.charges_from_datetime is None:
        return ZERO
    if billed_periods is not None and (subscription.external_id, window.charges_from_datetime) not in billed_periods:
        return credit_apply(invoice=invoice, fees=fees, billed=None)
    return credit_apply(
        invoice=invoice, fees=fees, billed=_latest_progressive_invoice(subscription, window.charges_from_datetime)
    )


def progressive_billing_check(*, subscription: Subscription, figures: Any, now: datetime | None = None) -> list[Any]:
    """Bill the period so far when the lifetime usage crossed new levels (inside the caller's
    transaction). Returns the ids of the invoices created (none or one)."""
    now = now or timezone.now()
    thresholds = applicable_thresholds(subscription)
    if not thresholds:
        return []
    scale = Decimal(10) ** decimal_places(figures.currency)
    levels = crossed_levels(
        thresholds=thresholds,
        billed_before_cents=(figures.historical_amount + figures.invoiced_amount) * scale,
        total_cents=figures.total_amount * scale,
        scale=scale,
    )
    applied = set(
        AppliedUsageThreshold.objects.filter(
            external_subscription_id=subscription.external_id, usage_threshold__in=thresholds
        ).values_list("usage_threshold_id", "threshold_amount")
    )
    new = [(threshold, level) for threshold, level in levels if (threshold.pk, level / scale) not in applied]
    if not new:
        return []
    usage = figures.usage
    fees = [
        fee for fee in usage.fees if fee.charge is not None and not fee.charge.pay_in_advance and fee.charge.invoiceable
    ]
    if not fees:
        return []
    invoice = _invoice_create(subscription=subscription, fees=fees, usage=usage, now=now)
    AppliedUsageThreshold.objects.bulk_create(
        [
            AppliedUsageThreshold(
                invoice=invoice,
                usage_threshold=threshold,
                external_subscription_id=subscription.external_id,
                threshold_amount=level / scale,
                lifetime_usage_amount=figures.total_amount,
            )
            for threshold, level in new
        ]
    )
    return [invoice.pk]


def _invoice_create(*, subscription: Subscription, fees: list[Fee], usage: Any, now: datetime) -> Invoice:
    """The progressive billing invoice, finalized in the caller's transaction."""
    from . import services  # services calls period_credit_apply: imported when used

    billing_period = periods.subscription_period(subscription, now)
    charges_period = periods.subscription_charges_period(subscription, now)
    window = windows.BillingWindow(
        reason=InvoicingReason.PROGRESSIVE_BILLING,
        from_datetime=billing_period.from_datetime,
        to_datetime=billing_period.to_datetime,
        timestamp=now,
        fee_period=None,
        charges_period=charges_period,
    )
    context = services.RunContext(organization=Organization.current())
    invoice = services._invoice_claim(subscription=subscription, window=window, context=context, grace_days=0)
    invoice.invoice_type = InvoiceType.PROGRESSIVE_BILLING
    for fee in fees:
        fee.invoice = invoice
    credit_apply(
        invoice=invoice, fees=fees, billed=_latest_progressive_invoice(subscription, charges_period.from_datetime)
    )
    services.invoice_complete(
        invoice=invoice,
        fees=fees,
        context=context,
        finalize=True,
        actor=ACTOR,
        now=now,
        payload={"reason": window.reason},
    )
    return invoice
