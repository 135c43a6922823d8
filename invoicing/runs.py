"""Billing runs: bill every subscription-period due at an instant, each in its own transaction.

`bill_due` is the inline run (the run_invoices command, the benchmark): usage of a chunk of
subscriptions is aggregated up front (one query per charge bucket for the whole chunk), then
each subscription-period is billed in its own transaction. `bill_one` bills one
subscription-period by ids (the Celery fan-out, the plans signals' receivers). Either way a
period billed already is skipped by the InvoiceSubscription unique constraint, never by a check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Prefetch

from customers.models import Organization
from plans.models import Subscription
from plans.subscriptions import subscriptions_activate_due

from . import billing, numbering, selectors, services, windows
from .corrections.recording import billed_through_publish
from .models import Invoice, InvoicingReason

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
    window: windows.BillingWindow,
    *,
    actor: str,
    usage: billing.DirectUsage | None = None,
    context: services.RunContext | None = None,
) -> Invoice:
    """One subscription-period, one transaction (services.invoice_create_for_period)."""
    return services.invoice_create_for_period(
        subscription=subscription, window=window, actor=actor, usage=usage, context=context
    )


def bill_due(
    *,
    at: datetime,
    actor: str,
    customer_external_id: str | None = None,
    subscription_external_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk_size: int = CHUNK,
) -> RunSummary:
    """Bill, inline, everything due at `at`: first every activation, termination and plan change
    due at `at` (as the live schedule would have made them), then every due period, oldest
    first. A subscription whose period fails bills none of its later ones in this run (its last
    billed period is where the next run resumes). Running it twice bills nothing the second time."""
    subscriptions_activate_due(now=at)
    due = selectors.due_subscriptions(
        at=at,
        customer_external_id=customer_external_id,
        subscription_external_id=subscription_external_id,
        include_billed=True,
    )
    due, billed = selectors.split_billed(due)
    summary = RunSummary(skipped=len(billed))
    organization = Organization.current()
    failed_subscriptions: set[Any] = set()
    done = 0
    for chunk in selectors.chunks(due, chunk_size):
        done = _bill_chunk(
            chunk,
            actor=actor,
            organization=organization,
            summary=summary,
            failed_subscriptions=failed_subscriptions,
            progress=progress,
            done=done,
            total=len(due),
        )
    return summary


def _bill_chunk(
    chunk: list[selectors.Due],
    *,
    actor: str,
    organization: Organization,
    summary: RunSummary,
    failed_subscriptions: set[Any],
    progress: Callable[[int, int], None] | None = None,
    done: int = 0,
    total: int = 0,
) -> int:
    """A chunk of due periods: usage aggregated up front for the chunk (one query per charge
    bucket), customers' numbers and lookups read once, then each period in its own transaction."""
    # Late usage: the chunk's period ends published before its usage is read (corrections).
    billed_through_publish(
        (d.subscription.external_id, d.window.charges_to_datetime)
        for d in chunk
        if d.window.charges_to_datetime is not None
    )
    usage = billing.BatchUsage(
        (d.subscription, d.window.charges_period) for d in chunk if d.window.charges_period is not None
    )
    numbering.customers_sequential_ids_assign(d.subscription.customer for d in chunk)
    context = services.RunContext.for_customers([d.subscription.customer_id for d in chunk], organization)
    context.plans_read([d.subscription for d in chunk])
    for item in chunk:
        done += 1
        if item.subscription.pk in failed_subscriptions:
            summary.failed += 1
            continue
        try:
            invoice = _bill(item.subscription, item.window, actor=actor, usage=usage, context=context)
        except services.AlreadyBilled:
            summary.skipped += 1
        except Exception as error:
            logger.exception("invoicing: billing %s failed", item.subscription.external_id)
            failed_subscriptions.add(item.subscription.pk)
            summary.failed += 1
            summary.errors.append(f"{item.subscription.external_id}: {error!r}")
        else:
            summary.created += 1
            summary.invoice_ids.append(invoice.pk)
        if progress is not None:
            progress(done, total)
    return done


def bill_batch(*, items: Sequence[tuple[str, Sequence[tuple[str, str]]]], actor: str) -> RunSummary:
    """The Celery fan-out's unit: several subscriptions' due periods (reason, ISO timestamp),
    each subscription's oldest first, billed as bill_due bills a chunk. Shares nothing with other
    batches but the database: the period's unique claim and the row locks order concurrent
    workers, so batches may run on any number of hosts, and a batch run twice bills nothing."""
    by_pk = {
        str(s.pk): s
        for s in billing.with_billing_relations(Subscription.objects.filter(pk__in=[pk for pk, _ in items]))
        .prefetch_related(
            Prefetch(
                "next_subscriptions",
                queryset=Subscription.objects.only(
                    "pk", "previous_subscription_id", "status", "started_at", "downgrade_at"
                ),
            )
        )
        .order_by("created_at", "id")
    }
    due: list[selectors.Due] = []
    for subscription_id, periods in items:
        subscription = by_pk.get(str(subscription_id))
        if subscription is None:
            continue
        for reason, timestamp in periods:
            window = windows.window_for(subscription, reason, datetime.fromisoformat(timestamp))
            if window is not None:
                due.append(selectors.Due(subscription, window))
    due.sort(key=lambda d: d.window.timestamp)  # stable: oldest period first, as bill_due
    summary = RunSummary()
    _bill_chunk(due, actor=actor, organization=Organization.current(), summary=summary, failed_subscriptions=set())
    return summary


def _subscription(subscription_id: Any) -> Subscription | None:
    return (
        billing.with_billing_relations(Subscription.objects.filter(pk=subscription_id))
        .prefetch_related("next_subscriptions")
        .first()
    )


def bill_one(*, subscription_id: Any, reason: str, timestamp: datetime | None, actor: str) -> Invoice | None:
    """Bill one subscription-period by ids (tasks). None when there is nothing to bill or it was
    billed already."""
    subscription = _subscription(subscription_id)
    if subscription is None:
        return None
    if reason == FINAL:
        if subscription.terminated_at is None:
            return None
        reason = selectors.final_reason(subscription)
        if reason == InvoicingReason.SUBSCRIPTION_TERMINATING and windows.skips_final_invoice(subscription):
            # Lago's on_termination_invoice "skip": no invoice for the last period; the unused
            # part of a fee paid in advance is still credited (once: the task may run twice).
            services.credit_note_for_skipped_final_invoice(subscription=subscription, actor=actor)
            return None
    if reason == InvoicingReason.SUBSCRIPTION_PERIODIC and timestamp is None:
        return None
    at = timestamp or subscription.terminated_at or windows.billing_start(subscription)
    window = windows.window_for(subscription, reason, at)
    if window is None:
        return None
    if window.charges_to_datetime is not None and reason != InvoicingReason.IN_ADVANCE_CHARGE:
        billed_through_publish([(subscription.external_id, window.charges_to_datetime)])
    try:
        return _bill(subscription, window, actor=actor)
    except services.AlreadyBilled:
        return None


# bill_one's reason for "the final invoice, upgrading or terminating as the subscription says".
FINAL = "final"


def bill_starting(*, subscription_id: Any, actor: str) -> Invoice | None:
    return bill_one(
        subscription_id=subscription_id, reason=InvoicingReason.SUBSCRIPTION_STARTING, timestamp=None, actor=actor
    )


def bill_final(*, subscription_id: Any, actor: str) -> Invoice | None:
    return bill_one(subscription_id=subscription_id, reason=FINAL, timestamp=None, actor=actor)
