"""Billing runs: bill every subscription-period due at an instant, each in its own transaction.

`bill_due` is the inline run (the run_invoices command, the benchmark): usage of a chunk of
subscriptions is aggregated up front (one query per charge bucket for the whole chunk), then
each subscription-period is billed in its own transaction. `bill_one` bills one
subscription-period by ids (the Celery fan-out, the plans signals' receivers). Either way a
period billed already is skipped by the InvoiceSubscription unique constraint, never by a check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing_project.money import round_amount
from customers.models import Organization
from plans import periods
from plans.models import Subscription

from . import billing, credit_notes, numbering, selectors, services
from .models import Fee, FeeType, Invoice, InvoiceStatus, InvoicingReason

logger = logging.getLogger(__name__)

CHUNK = 500


@dataclass
class RunSummary:
    created: int = 0
    skipped: int = 0
    failed: int = 0
    invoice_ids: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "skipped": self.skipped, "failed": self.failed}


def _bill(
    subscription: Subscription,
    window: billing.BillingWindow,
    *,
    actor: str,
    usage: billing.DirectUsage | None = None,
    context: services.RunContext | None = None,
) -> Invoice:
    """One subscription-period, one transaction; a final period of a pay-in-advance plan also
    credits the unused part of the fee paid at the start of the period, in that transaction."""
    final = window.reason in (InvoicingReason.UPGRADING, InvoicingReason.SUBSCRIPTION_TERMINATING)
    return services.invoice_create_for_period(
        subscription=subscription,
        window=window,
        actor=actor,
        usage=usage,
        context=context,
        after_create=(lambda invoice: _credit_unused_advance_fee(subscription, actor=actor)) if final else None,
    )


def _credit_unused_advance_fee(subscription: Subscription, *, actor: str) -> None:
    end = subscription.terminated_at
    if not subscription.plan.pay_in_advance or end is None:
        return
    fee = (
        Fee.objects.filter(
            subscription=subscription,
            fee_type=FeeType.SUBSCRIPTION,
            from_datetime__lt=end,
            to_datetime__gt=end,
            invoice__status=InvoiceStatus.FINALIZED,
        )
        .select_related("invoice")
        .order_by("-from_datetime")
        .first()
    )
    if fee is None or fee.amount <= 0:
        return
    assert fee.from_datetime is not None and fee.to_datetime is not None  # the filter compared both
    tz = periods.subscription_timezone(subscription)
    paid = periods.clip_to(periods.subscription_period(subscription, fee.from_datetime), fee.to_datetime, tz)
    used = periods.clip_to(paid, end, tz)
    if paid.days <= 0 or used.days >= paid.days:
        return
    # Unused days of the period paid for, as Lago: amount x unused days / days paid for.
    amount = round_amount(fee.amount * Decimal(paid.days - used.days) / Decimal(paid.days), fee.currency)
    if amount > 0:
        credit_notes.credit_note_create_for_unused_subscription_fee(fee=fee, amount=amount, actor=actor)


def bill_due(
    *,
    at: datetime,
    actor: str,
    customer_external_id: str | None = None,
    subscription_external_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk_size: int = CHUNK,
) -> RunSummary:
    """Bill, inline, everything due at `at`. Running it twice bills nothing the second time."""
    due = selectors.due_subscriptions(
        at=at,
        customer_external_id=customer_external_id,
        subscription_external_id=subscription_external_id,
        include_billed=True,
    )
    due, billed = selectors.split_billed(due)
    summary = RunSummary(skipped=len(billed))
    organization = Organization.current()
    done = 0
    for chunk in selectors.chunks(due, chunk_size):
        usage = billing.BatchUsage(
            (d.subscription, d.window.charges_period) for d in chunk if d.window.charges_period is not None
        )
        numbering.customers_sequential_ids_assign(d.subscription.customer for d in chunk)
        context = services.RunContext.for_customers([d.subscription.customer_id for d in chunk], organization)
        for item in chunk:
            try:
                invoice = _bill(item.subscription, item.window, actor=actor, usage=usage, context=context)
            except services.AlreadyBilled:
                summary.skipped += 1
            except Exception as error:
                logger.exception("invoicing: billing %s failed", item.subscription.external_id)
                summary.failed += 1
                summary.errors.append(f"{item.subscription.external_id}: {error!r}")
            else:
                summary.created += 1
                summary.invoice_ids.append(invoice.pk)
            done += 1
            if progress is not None:
                progress(done, len(due))
    return summary


def _subscription(subscription_id: Any) -> Subscription | None:
    rows = selectors.with_local_timezones(
        list(billing.with_billing_relations(Subscription.objects.filter(pk=subscription_id)))
    )
    return rows[0] if rows else None


def bill_one(*, subscription_id: Any, reason: str, timestamp: datetime | None, actor: str) -> Invoice | None:
    """Bill one subscription-period by ids (tasks). None when there is nothing to bill or it was
    billed already."""
    subscription = _subscription(subscription_id)
    if subscription is None:
        return None
    if reason == InvoicingReason.SUBSCRIPTION_PERIODIC:
        if timestamp is None:
            return None
        window: billing.BillingWindow | None = billing.billing_window_periodic(subscription, timestamp)
    elif reason == InvoicingReason.SUBSCRIPTION_STARTING:
        window = billing.billing_window_starting(subscription)
    else:
        if subscription.terminated_at is None:
            return None
        window = billing.billing_window_final(subscription, reason=reason)
    if window is None:
        return None
    try:
        return _bill(subscription, window, actor=actor)
    except services.AlreadyBilled:
        return None


def bill_starting(*, subscription_id: Any, actor: str) -> Invoice | None:
    return bill_one(
        subscription_id=subscription_id, reason=InvoicingReason.SUBSCRIPTION_STARTING, timestamp=None, actor=actor
    )


def bill_final(*, subscription_id: Any, actor: str) -> Invoice | None:
    subscription = Subscription.objects.filter(pk=subscription_id).prefetch_related("next_subscriptions").first()
    if subscription is None or subscription.terminated_at is None:
        return None
    return bill_one(
        subscription_id=subscription_id, reason=selectors.final_reason(subscription), timestamp=None, actor=actor
    )
