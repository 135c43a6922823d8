"""Lago's smaller invoice actions: delete a draft, retry a failed generation, lose a payment
dispute; and the two fee actions on fees without an invoice (payment status, delete).

One transaction each, under the invoice's lock (invoicing.locks), an InvoiceEvent per change and
the `*_in_tx` signal webhooks announce.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from customers.models import Organization

from . import locks, services, totals
from .errors import InvoicingError, NotAllowedError, NotFoundError
from .models import (
    Credit,
    Fee,
    FeePaymentStatus,
    Invoice,
    InvoiceAppliedTax,
    InvoiceEvent,
    InvoiceStatus,
    InvoiceType,
)
from .signals import invoice_deleted_in_tx, invoice_payment_dispute_lost_in_tx

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Deleting a draft
#
# A hook is called with the locked draft, inside the deleting transaction, before the draft's
# rows go: a document type with rows of its own hanging off its drafts (a correction draft's
# lineage, say) registers one to remove or release them. A hook may raise an InvoicingError to
# refuse the deletion (the transaction then rolls back whole).
DraftDeleteHook = Callable[[Invoice], None]
_DRAFT_DELETE_HOOKS: list[DraftDeleteHook] = []


def register_draft_delete_hook(hook: DraftDeleteHook) -> DraftDeleteHook:
    """Register `hook` (usable as a decorator); registering twice keeps one."""
    if hook not in _DRAFT_DELETE_HOOKS:
        _DRAFT_DELETE_HOOKS.append(hook)
    return hook


@transaction.atomic
def invoice_draft_delete(*, invoice: Invoice, actor: str) -> Invoice:
    """Lago's DELETE /invoices/{id}: a draft only (405 `not_deletable` otherwise).

    The draft's coupons are given back, its fees, taxes and credits removed, and its status becomes
    `deleted` (Lago's invisible status): the row and its InvoiceSubscription stay, so the billing
    run never bills that period again, and the API no longer finds it.
    """
    invoice = locks.lock_invoice(invoice)
    if invoice.status != InvoiceStatus.DRAFT:
        raise NotAllowedError("not_deletable")
    for hook in list(_DRAFT_DELETE_HOOKS):
        hook(invoice)
    totals.coupons_restore(invoice=invoice)
    Credit.objects.filter(invoice=invoice).delete()
    InvoiceAppliedTax.objects.filter(invoice=invoice).delete()
    fees_count, _ = Fee.objects.filter(invoice=invoice).delete()
    invoice.status = InvoiceStatus.DELETED
    invoice.save(update_fields=["status", "updated_at"])
    InvoiceEvent.objects.create(invoice=invoice, kind="deleted", actor=actor, payload={"fees_removed": fees_count})
    invoice_deleted_in_tx.send(sender=Invoice, invoice_id=invoice.pk)
    return invoice


# --------------------------------------------------------------------------------------------
# Retrying a failed generation


@transaction.atomic
def invoice_generation_retry(*, invoice: Invoice, actor: str, now: datetime | None = None) -> Invoice:
    """Lago's POST /invoices/{id}/retry: an invoice whose generation failed (`failed`) is computed
    again from its subscription-periods and finalized; any other status is 405 `invalid_status`."""
    invoice = locks.lock_invoice(invoice)
    if invoice.status != InvoiceStatus.FAILED:
        raise NotAllowedError("invalid_status")
    invoice.status = InvoiceStatus.DRAFT
    invoice.save(update_fields=["status", "updated_at"])
    InvoiceEvent.objects.create(invoice=invoice, kind="generation_retried", actor=actor, payload={})
    services._finalize_locked(
        invoice,
        organization=Organization.current(),
        actor=actor,
        now=now,
        refresh=invoice.invoice_type == InvoiceType.SUBSCRIPTION,
    )
    return invoice


# --------------------------------------------------------------------------------------------
# Payment disputes


@transaction.atomic
def invoice_dispute_lose(*, invoice: Invoice, actor: str, now: datetime | None = None) -> Invoice:
    """Lago's POST /invoices/{id}/lose_dispute: the customer's bank kept a disputed payment.

    Only an issued invoice (finalized or voided) can lose a dispute (405 `not_disputable`); the
    first date is kept (losing twice changes nothing), the invoice stops being overdue and can no
    longer be voided. Amounts and payments are untouched: the money left through the bank.
    """
    invoice = locks.lock_invoice(invoice)
    if invoice.status not in (InvoiceStatus.FINALIZED, InvoiceStatus.VOIDED):
        raise NotAllowedError("not_disputable")
    if invoice.payment_dispute_lost_at is not None:
        return invoice
    invoice.payment_dispute_lost_at = now or timezone.now()
    invoice.payment_overdue = False
    invoice.save(update_fields=["payment_dispute_lost_at", "payment_overdue", "updated_at"])
    InvoiceEvent.objects.create(
        invoice=invoice,
        kind="payment_dispute_lost",
        actor=actor,
        payload={"payment_dispute_lost_at": invoice.payment_dispute_lost_at.isoformat()},
    )
    invoice_payment_dispute_lost_in_tx.send(sender=Invoice, invoice_id=invoice.pk)
    return invoice


# --------------------------------------------------------------------------------------------
# Fees without an invoice (pay-in-advance charges that are not invoiceable)


def _lock_fee(fee: Fee) -> Fee:
    locked = Fee.objects.select_for_update().filter(pk=fee.pk, deleted_at__isnull=True).first()
    if locked is None:
        raise NotFoundError("fee")
    return locked


@transaction.atomic
def fee_payment_status_update(*, fee: Fee, payment_status: str, now: datetime | None = None) -> Fee:
    """Lago's PUT /fees/{id}: a fee without an invoice is paid outside Tollgate, so its status is
    set from outside. An invoiced fee's status is its invoice's (405 `invoiced_fee`). Only the
    timestamp of the current status is kept (pending -> failed -> succeeded leaves succeeded_at)."""
    fee = _lock_fee(fee)
    if fee.invoice_id is not None:
        raise NotAllowedError("invoiced_fee")
    if payment_status not in FeePaymentStatus.values:
        raise InvoicingError.field("payment_status", "value_is_invalid")
    moment = now or timezone.now()
    fee.payment_status = payment_status
    fee.succeeded_at = moment if payment_status == FeePaymentStatus.SUCCEEDED else None
    fee.failed_at = moment if payment_status == FeePaymentStatus.FAILED else None
    fee.refunded_at = moment if payment_status == FeePaymentStatus.REFUNDED else None
    fee.save(update_fields=["payment_status", "succeeded_at", "failed_at", "refunded_at", "updated_at"])
    return fee


@transaction.atomic
def fee_delete(*, fee: Fee, now: datetime | None = None) -> Fee:
    """Lago's DELETE /fees/{id}: a fee without an invoice is discarded (kept, hidden); an invoiced
    fee is 405 `invoiced_fee` (an issued invoice never changes; a draft is refreshed instead)."""
    fee = _lock_fee(fee)
    if fee.invoice_id is not None:
        raise NotAllowedError("invoiced_fee")
    fee.deleted_at = now or timezone.now()
    fee.save(update_fields=["deleted_at", "updated_at"])
    return fee
