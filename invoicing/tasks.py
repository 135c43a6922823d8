"""Celery tasks of the invoicing app: thin wrappers that load ids and call runs and services.
Each is safe to run twice (a period billed already is skipped by the database)."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from metrics.rollups import usage_rollups_fold
from plans.subscriptions import subscriptions_activate_due

from . import advance_charges, pdf, runs, selectors, services
from .models import CreditNote, Invoice


@shared_task(name="invoicing.tasks.bill_due_subscriptions")
def bill_due_subscriptions(at: str | None = None) -> dict[str, int]:
    """Hourly at :10: the plan changes due at the instant first (as runs.bill_due), then the
    fan-out: one task per batch of FANOUT_BATCH subscriptions, each with its due periods, oldest
    first (a batch aggregates its usage up front and bills its periods in one transaction, runs.BATCH;
    one that raises is billed again one period per transaction)."""
    instant = datetime.fromisoformat(at) if at else timezone.now()
    subscriptions_activate_due(now=instant)
    # Fold the hours just closed into the usage rollups first (waiting for a periodic fold that
    # is running), so that the runs read buckets rather than the period's every event.
    usage_rollups_fold(now=instant, wait=True)
    due = selectors.due_subscriptions(at=instant)
    by_subscription: dict[str, list[tuple[str, str]]] = {}
    for item in due:
        by_subscription.setdefault(str(item.subscription.pk), []).append(
            (item.window.reason, item.window.timestamp.isoformat())
        )
    items = list(by_subscription.items())
    for start in range(0, len(items), FANOUT_BATCH):
        bill_subscriptions_batch.delay(items[start : start + FANOUT_BATCH])
    rerate_late_usage.delay(instant.isoformat())
    return {"due": len(due), "subscriptions": len(by_subscription), "tasks": -(-len(items) // FANOUT_BATCH)}


# Subscriptions per fan-out task: large enough that a batch's bulk reads (usage, customers'
# lookups) replace most per-invoice queries, small enough that many workers share a run.
FANOUT_BATCH = 50


@shared_task(name="invoicing.tasks.bill_subscriptions_batch")
def bill_subscriptions_batch(items: list[tuple[str, list[tuple[str, str]]]]) -> list[str]:
    """A batch of subscriptions' due periods (runs.bill_batch): safe to run twice, a period
    billed already is skipped by its unique claim."""
    summary = runs.bill_batch(items=items, actor="system:billing_run")
    return [str(pk) for pk in summary.invoice_ids]


@shared_task(name="invoicing.tasks.rerate_late_usage")
def rerate_late_usage(at: str | None = None) -> dict[str, int]:
    """After the hourly run: finalized periods that received late events, re-rated."""
    from .corrections.rerate import late_usage_rerate

    instant = datetime.fromisoformat(at) if at else timezone.now()
    return late_usage_rerate(at=instant, actor="system:billing_run").as_dict()


@shared_task(name="invoicing.tasks.bill_subscription_periods")
def bill_subscription_periods(subscription_id: str, periods: list[tuple[str, str]]) -> list[str]:
    """(Kept for tasks queued before the batched fan-out.) One subscription's due periods,
    oldest first: a failure stops the later ones (the next run resumes after the last billed
    period, so none is skipped)."""
    invoice_ids = []
    for reason, timestamp in periods:
        invoice = runs.bill_one(
            subscription_id=subscription_id,
            reason=reason,
            timestamp=datetime.fromisoformat(timestamp),
            actor="system:billing_run",
        )
        if invoice is not None:
            invoice_ids.append(str(invoice.pk))
    return invoice_ids


@shared_task(name="invoicing.tasks.bill_subscription_period")
def bill_subscription_period(subscription_id: str, reason: str, timestamp: str | None = None) -> str | None:
    invoice = runs.bill_one(
        subscription_id=subscription_id,
        reason=reason,
        timestamp=datetime.fromisoformat(timestamp) if timestamp else None,
        actor="system:billing_run",
    )
    return str(invoice.pk) if invoice is not None else None


@shared_task(name="invoicing.tasks.bill_subscription_start")
def bill_subscription_start(subscription_id: str) -> str | None:
    invoice = runs.bill_starting(subscription_id=subscription_id, actor="system:subscription_started")
    return str(invoice.pk) if invoice is not None else None


@shared_task(name="invoicing.tasks.bill_subscription_end")
def bill_subscription_end(subscription_id: str) -> str | None:
    invoice = runs.bill_final(subscription_id=subscription_id, actor="system:subscription_terminated")
    return str(invoice.pk) if invoice is not None else None


@shared_task(name="invoicing.tasks.bill_pay_in_advance_event")
def bill_pay_in_advance_event(external_subscription_id: str, code: str, transaction_id: str) -> list[str]:
    """One stored event of a pay-in-advance charge (`code` is the event's, for the logs): its
    fees, and invoices for invoiceable charges. Billing it twice bills nothing (unique fee)."""
    fees = advance_charges.fees_create_for_event(
        external_subscription_id=external_subscription_id, transaction_id=transaction_id
    )
    return [str(fee.pk) for fee in fees]


@shared_task(name="invoicing.tasks.bill_missed_pay_in_advance_events")
def bill_missed_pay_in_advance_events(hours: int | None = None) -> dict[str, int]:
    """Every 10 minutes: bill the recent pay-in-advance events whose announcement was lost
    (broker down, task lost); events billed already are not found, so a rerun bills nothing."""
    result = advance_charges.fees_sweep_missed(hours=hours)
    return {"events": result.events, "billed": result.billed, "fees": result.fees, "failed": result.failed}


@shared_task(name="invoicing.tasks.finalize_due_drafts")
def finalize_due_drafts() -> dict[str, int]:
    """Hourly at :20: refresh drafts that received late events, finalize those past their grace."""
    return services.invoices_finalize_due(now=timezone.now())


@shared_task(name="invoicing.tasks.render_credit_note_pdf")
def render_credit_note_pdf(credit_note_id: str) -> None:
    """The note's first PDF (its e-mail may have rendered it already: a note never changes)."""
    credit_note = CreditNote.objects.select_related("customer", "invoice").filter(pk=credit_note_id).first()
    if credit_note is not None and not credit_note.file:
        pdf.credit_note_pdf_render(credit_note=credit_note)


@shared_task(name="invoicing.tasks.render_invoice_pdf")
def render_invoice_pdf(invoice_id: str) -> None:
    """A finalized invoice's first PDF (its e-mail may have rendered it already; a finalized invoice
    never changes, and regenerating on purpose is the admin's and regenerate_pdfs' job)."""
    invoice = Invoice.objects.select_related("customer").filter(pk=invoice_id).first()
    if invoice is not None and not invoice.file:
        pdf.invoice_pdf_render(invoice=invoice)


@shared_task(name="invoicing.tasks.render_missing_invoice_pdfs")
def render_missing_invoice_pdfs() -> dict[str, int]:
    """Every 10 minutes: finalized invoices whose PDF task was lost get one task each (rendering
    twice only replaces the file)."""
    missing = pdf.invoices_missing_pdf(now=timezone.now())
    for invoice_id in missing:
        render_invoice_pdf.delay(str(invoice_id))
    return {"missing": len(missing)}


@shared_task(name="invoicing.tasks.evaluate_subscription_usage")
def evaluate_subscription_usage(subscription_id: str) -> dict[str, int] | None:
    """A subscription's usage moved (an ingestion batch): its alerts and usage thresholds.
    Twice is harmless: the second finds no activity row (and crossings are unique)."""
    from .monitoring.evaluation import subscription_usage_evaluate

    result = subscription_usage_evaluate(subscription_id=subscription_id)
    if result is None:
        return None
    return {"triggered": len(result.triggered), "progressive_invoices": len(result.progressive_invoice_ids)}


@shared_task(name="invoicing.tasks.sweep_usage_activities")
def sweep_usage_activities() -> int:
    """Every 5 minutes: subscriptions whose evaluation task was lost or failed."""
    from .monitoring.evaluation import activities_sweep

    return activities_sweep()
