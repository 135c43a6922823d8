"""Celery tasks of the payments app: thin wrappers that load ids and call services.

Each is safe to run twice: the services re-check state under row locks and Stripe requests carry
idempotency keys.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from . import refunds, services
from .providers import ProviderRejected, ProviderUnavailable

logger = logging.getLogger(__name__)


@shared_task(name="payments.tasks.sync_stripe_customer")
def sync_stripe_customer(customer_id: str, create: bool = True) -> None:
    try:
        services.stripe_customer_sync(customer_id=customer_id, create=create)
    except ProviderUnavailable as error:
        # Synced again at the next save, and on demand when an invoice is collected.
        logger.warning("Stripe unavailable, customer %s not synced: %s", customer_id, error)
    except ProviderRejected as error:
        logger.error("Stripe refused customer %s: %s", customer_id, error.message)


@shared_task(name="payments.tasks.collect_invoice_payment")
def collect_invoice_payment(invoice_id: str, trigger: str, after_attempt: int) -> None:
    services.invoice_payment_collect(invoice_id=invoice_id, trigger=trigger, after_attempt=after_attempt)


@shared_task(name="payments.tasks.retry_failed_payments")
def retry_failed_payments() -> dict[str, int]:
    """Hourly: start the automatic retries that are due, re-send attempts left pending, collect
    finalized invoices whose collection task was lost (the database state, not the task, is
    what guarantees that every invoice is collected)."""
    now = timezone.now()
    resent, closed = services.payments_sweep_stale(now=now)
    started = services.payments_retry_due(now=now)
    missed = services.invoices_collect_missed(now=now)
    return {"retries_started": started, "pending_resent": resent, "pending_closed": closed, "missed_collected": missed}


@shared_task(name="payments.tasks.flag_overdue_invoices")
def flag_overdue_invoices() -> dict[str, int]:
    """Daily: set payment_overdue on invoices past due with something to pay, clear it on the rest."""
    flagged, cleared = services.invoices_overdue_refresh(today=timezone.now().date())
    return {"flagged": flagged, "cleared": cleared}


@shared_task(name="payments.tasks.refund_credit_note")
def refund_credit_note(credit_note_id: str) -> list[str]:
    """Refund a credit note through Stripe (or leave it to finance); safe to run twice."""
    return [str(refund.pk) for refund in refunds.credit_note_refund_start(credit_note_id=credit_note_id)]


@shared_task(name="payments.tasks.resend_pending_refunds")
def resend_pending_refunds() -> dict[str, int]:
    """Hourly: re-send refunds left pending, start the ones whose request was lost."""
    resent, started = refunds.refunds_sweep_stale(now=timezone.now())
    return {"refunds_resent": resent, "refunds_started": started}


@shared_task(name="payments.tasks.render_payment_receipt_pdf")
def render_payment_receipt_pdf(payment_receipt_id: str) -> None:
    """A receipt's PDF (its e-mail may have rendered it first: a receipt never changes)."""
    from .models import PaymentReceipt
    from .receipts import payment_receipt_pdf_render

    receipt = PaymentReceipt.objects.filter(pk=payment_receipt_id).first()
    if receipt is not None and not receipt.file:
        payment_receipt_pdf_render(receipt=receipt)


@shared_task(name="payments.tasks.run_dunning_campaigns")
def run_dunning_campaigns() -> dict[str, int]:
    """Daily at 07:00 UTC (after the 00:30 overdue flagging): today's dunning steps."""
    from dataclasses import asdict

    from .dunning import dunning_run

    return asdict(dunning_run(today=timezone.now().date()))
