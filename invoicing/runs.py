"""Billing runs: bill every subscription-period due at an instant, a batch of them per transaction.

`bill_due` is the inline run (the run_invoices command, the benchmark): usage of a chunk of
subscriptions is aggregated up front (one query per charge bucket for the whole chunk), then the
chunk's subscription-periods are billed BATCH at a time, each batch in one transaction (one
commit instead of one per invoice). A batch that raises anywhere is rolled back whole and billed
again one invoice per transaction, from objects read again: a failing invoice fails alone.
`bill_batch` is the Celery fan-out's unit (billed as a chunk), `bill_one` bills one
subscription-period by ids in its own transaction (the plans signals' receivers). Either way a
period billed already is skipped by the InvoiceSubscription unique constraint, never by a check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Prefetch

from customers.models import Organization
from plans.models import Subscription
from plans.subscriptions import subscriptions_activate_due

from . import billing, numbering, selectors, services, windows
from .corrections.recording import billed_through_publish
from .models import Invoice, InvoicingReason

logger = logging.getLogger(__name__)

CHUNK = 500

# Subscription-periods per transaction, inline and in each Celery task: one commit (its WAL
# flush, about 4 ms on this disk with synchronous_commit on) is shared by BATCH invoices. While a
# batch runs, the rows its invoices lock stay locked until it commits: the customers' numbering
# sequence rows (per-organization numbering: the one organization row, so concurrent workers
# queue for a whole batch), the wallets and credit notes they consume. Large enough to make the
# commit's cost small per invoice, small enough that a rolled-back batch costs little to bill again.
BATCH = 50


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
    batch_size: int | None = None,
) -> int:
    """A chunk of due periods: usage aggregated up front for the chunk (one query per charge
    bucket), customers' numbers and lookups read once, then BATCH periods per transaction."""
    # Late usage: the chunk's period ends published before its usage is read (corrections).
    billed_through_publish(
        (d.subscription.external_id, d.window.charges_to_datetime)
        for d in chunk
        if d.window.charges_to_datetime is not None
    )
    numbering.customers_sequential_ids_assign(d.subscription.customer for d in chunk)
    usage, context = _chunk_reads(chunk, organization)
    batch_size = batch_size or BATCH
    for start in range(0, len(chunk), batch_size):
        batch = chunk[start : start + batch_size]
        done += len(batch)
        # A subscription whose earlier period failed in this run bills none of its later ones.
        stopped = [item for item in batch if item.subscription.pk in failed_subscriptions]
        summary.failed += len(stopped)
        batch = [item for item in batch if item.subscription.pk not in failed_subscriptions]
        if len(batch) == 1:
            _bill_each(
                batch,
                actor=actor,
                usage=usage,
                context=context,
                summary=summary,
                failed_subscriptions=failed_subscriptions,
            )
        elif batch and not _bill_together(batch, actor=actor, usage=usage, context=context, summary=summary):
            # Rolled back whole (nothing of it left: rows, numbers, on_commit callbacks). Billed
            # again one per transaction from objects read again: the attempt may have changed the
            # ones in memory (subscriptions, customers, the context's snapshots).
            batch = _read_again(batch)
            retry_usage, retry_context = _chunk_reads(batch, Organization.current())
            _bill_each(
                batch,
                actor=actor,
                usage=retry_usage,
                context=retry_context,
                summary=summary,
                failed_subscriptions=failed_subscriptions,
            )
        if progress is not None:
            progress(done, total)
    return done


def _chunk_reads(
    chunk: Sequence[selectors.Due], organization: Organization
) -> tuple[billing.BatchUsage, services.RunContext]:
    """What the chunk's invoices read once: the usage of every period, the customers' and
    plans' lookups."""
    usage = billing.BatchUsage(
        (d.subscription, d.window.charges_period) for d in chunk if d.window.charges_period is not None
    )
    context = services.RunContext.for_customers([d.subscription.customer_id for d in chunk], organization)
    context.plans_read([d.subscription for d in chunk])
    return usage, context


def _bill_together(
    batch: Sequence[selectors.Due],
    *,
    actor: str,
    usage: billing.BatchUsage,
    context: services.RunContext,
    summary: RunSummary,
) -> bool:
    """The batch in one transaction; False (nothing kept, nothing reported) when anything in it
    raised, its commit included. A period billed already (a second run, a racing worker) raises
    AlreadyBilled and rolls the batch back too: the retry skips it. The numbers of the invoices
    finalized at once (no grace period) are reserved first, in one statement."""
    organization = context.organization
    finalized = [
        item.subscription.customer
        for item in batch
        if item.subscription.customer.applicable_invoice_grace_period(organization) == 0
    ]
    try:
        with transaction.atomic():
            context.numbers = numbering.numbers_reserve(finalized, organization)
            context.writes = writes = services.BatchWrites(organization)
            invoices = []
            for item in batch:
                if writes.holds(item.subscription.customer_id):
                    writes.flush()  # a customer's second invoice may read the first one's rows
                invoices.append(
                    services.invoice_create_for_period(
                        subscription=item.subscription,
                        window=item.window,
                        actor=actor,
                        usage=usage,
                        context=context,
                        batched=True,
                    )
                )
            writes.flush()  # the batch's rows: one statement
            if context.numbers.left():  # gapless: every reserved number is used, or none is
                raise RuntimeError(f"{context.numbers.left()} reserved invoice numbers left unused")
    except Exception as error:
        logger.info(
            "invoicing: a batch of %d periods rolled back (%r); billing them one per transaction", len(batch), error
        )
        return False
    finally:
        context.numbers = None
        context.writes = None
    summary.created += len(invoices)
    summary.invoice_ids.extend(invoice.pk for invoice in invoices)
    return True


def _bill_each(
    batch: Sequence[selectors.Due],
    *,
    actor: str,
    usage: billing.BatchUsage,
    context: services.RunContext,
    summary: RunSummary,
    failed_subscriptions: set[Any],
) -> None:
    """One period per transaction: a failure is reported and stops the subscription's later periods."""
    for item in batch:
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


def _with_relations(queryset: Any) -> Any:
    """Subscriptions with what billing and its windows read (as selectors.due_subscriptions)."""
    return billing.with_billing_relations(queryset).prefetch_related(
        Prefetch(
            "next_subscriptions",
            queryset=Subscription.objects.only(
                "pk", "previous_subscription_id", "status", "started_at", "downgrade_at"
            ),
        )
    )


def _read_again(batch: Sequence[selectors.Due]) -> list[selectors.Due]:
    """The batch's periods with their subscriptions (customers, plans) read again; the windows
    are values computed from them before the attempt, kept as they are."""
    fresh = {s.pk: s for s in _with_relations(Subscription.objects.filter(pk__in={d.subscription.pk for d in batch}))}
    return [selectors.Due(fresh[d.subscription.pk], d.window) for d in batch if d.subscription.pk in fresh]


def bill_batch(*, items: Sequence[tuple[str, Sequence[tuple[str, str]]]], actor: str) -> RunSummary:
    """The Celery fan-out's unit: several subscriptions' due periods (reason, ISO timestamp),
    each subscription's oldest first, billed as bill_due bills a chunk. Shares nothing with other
    batches but the database: the period's unique claim and the row locks order concurrent
    workers, so batches may run on any number of hosts, and a batch run twice bills nothing."""
    by_pk = {
        str(s.pk): s
        for s in _with_relations(Subscription.objects.filter(pk__in=[pk for pk, _ in items])).order_by(
            "created_at", "id"
        )
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
