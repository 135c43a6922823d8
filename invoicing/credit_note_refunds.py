"""Refunds of credit notes: invoicing records what a note owes back (refund_amount,
refund_status pending) and announces it (credit_note_refund_requested); payments moves the money
and reports the outcome through the functions here."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from billing_project.money import to_cents

from . import locks
from .credit_notes import note_event
from .errors import InvoicingError, NotAllowedError
from .models import CreditNote, InvoiceEvent, RefundStatus

# invoicing records what a note owes back (refund_amount, refund_status pending) and announces it
# (credit_note_refund_requested); payments moves the money (Stripe) and reports the outcome here.
# Money refunded by hand (bank transfer) is marked paid by finance. Invoicing never imports
# payments: what payments did is known here only through the calls below and their audit rows.

# Where a refund may go next: `succeeded` is final; `failed` gives way only to a later success (a
# refund finance made by hand after the provider's failure). The same status twice is a no-op.
REFUND_TRANSITIONS: dict[str, frozenset[str]] = {
    RefundStatus.PENDING: frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED}),
    RefundStatus.FAILED: frozenset({RefundStatus.SUCCEEDED}),
    RefundStatus.SUCCEEDED: frozenset(),
}
# The audit row that says a provider took the refund over (payments writes it through
# credit_note_refund_submission_record): from then on, only the provider's outcome settles it.
REFUND_SUBMITTED_EVENT = "credit_note_refund_submitted"


def _refund_payload(note: CreditNote) -> dict[str, Any]:
    return {
        "credit_note_id": str(note.pk),
        "number": note.number,
        "currency": note.currency,
        "refund_amount_cents": to_cents(note.refund_amount, note.currency),
    }


def _lock_note_with_refund(credit_note: CreditNote) -> CreditNote:
    note = locks.lock_credit_note(credit_note)
    if not note.refund_status or note.refund_amount <= 0:
        raise NotAllowedError("no_refund")
    return note


def credit_note_refund_status_update(
    *, credit_note: CreditNote, status: str, actor: str, reason: str = ""
) -> CreditNote:
    """Record a refund's outcome: pending -> succeeded or failed (and failed -> succeeded).
    `succeeded` is final and dates the refund (refunded_at). Repeating the current status changes
    nothing (a retried task, a re-delivered webhook); any other move is not_allowed
    "invalid_refund_status". Writes an InvoiceEvent with the reason (decline, reference)."""
    if status not in (RefundStatus.SUCCEEDED, RefundStatus.FAILED):
        raise InvoicingError.field("refund_status", "value_is_invalid")
    with transaction.atomic():
        note = _lock_note_with_refund(credit_note)
        previous = note.refund_status
        if previous == status:
            return note
        if status not in REFUND_TRANSITIONS[previous]:
            raise NotAllowedError("invalid_refund_status")
        note.refund_status = status
        fields = ["refund_status", "updated_at"]
        if status == RefundStatus.SUCCEEDED:
            note.refunded_at = timezone.now()
            fields.append("refunded_at")
        note.save(update_fields=fields)
        note_event(
            note=note,
            invoice_id=note.invoice_id,
            kind=f"credit_note_refund_{status}",
            actor=actor,
            payload={**_refund_payload(note), "previous_status": previous, "reason": reason},
        )
    return note


def credit_note_refund_submission_record(
    *, credit_note: CreditNote, provider: str, actor: str, details: dict[str, Any] | None = None
) -> None:
    """Inside the caller's transaction: note that `provider` took the pending refund over (its
    outcome will come through credit_note_refund_status_update), so nobody marks it paid by hand
    meanwhile and the money goes back once."""
    with transaction.atomic():
        note = _lock_note_with_refund(credit_note)
        if note.refund_status != RefundStatus.PENDING:
            raise NotAllowedError("invalid_refund_status")
        note_event(
            note=note,
            invoice_id=note.invoice_id,
            kind=REFUND_SUBMITTED_EVENT,
            actor=actor,
            payload={**_refund_payload(note), "provider": provider, **(details or {})},
        )


def credit_note_refund_mark_paid(*, credit_note: CreditNote, actor: str, reason: str = "") -> CreditNote:
    """Finance refunded the money outside Tollgate (bank transfer): the refund succeeded. Refused
    (not_allowed "refund_handled_by_provider") while a provider holds a pending refund; after the
    provider failed, a refund made by hand may still be recorded."""
    with transaction.atomic():
        note = _lock_note_with_refund(credit_note)
        if note.refund_status == RefundStatus.SUCCEEDED:
            raise NotAllowedError("invalid_refund_status")
        handed_over = InvoiceEvent.objects.filter(credit_note_id=note.pk, kind=REFUND_SUBMITTED_EVENT).exists()
        if handed_over and note.refund_status == RefundStatus.PENDING:
            raise NotAllowedError("refund_handled_by_provider")
        return credit_note_refund_status_update(
            credit_note=note, status=RefundStatus.SUCCEEDED, actor=actor, reason=reason or "refunded by hand"
        )
