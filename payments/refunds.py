"""Refunds of credit notes: invoicing announces a note's refund (credit_note_refund_requested);
here it is given back through Stripe when the invoice was collected through Stripe, and the
outcome is reported to invoicing (credit_note_refund_status_update). Otherwise (manual payments)
the refund stays pending until finance marks it paid in the credit note admin.

Locking order, always: the invoice row, then the credit note row, then refund rows (payments'
order: invoice first). Provider calls happen outside transactions.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Sum
from django.utils import timezone

from invoicing import credit_note_refunds
from invoicing.locks import lock_credit_note, lock_invoice
from invoicing.models import CreditNote
from invoicing.models import RefundStatus as NoteRefundStatus

from .models import Payment, PaymentProviderName, PaymentStatus, Refund, RefundStatus
from .providers import ProviderUnavailable, RefundOutcome
from .providers import stripe as stripe_provider

logger = logging.getLogger(__name__)

ACTOR = "system:payments"
# A pending refund untouched this long is sent again (the lookup by metadata makes it safe).
STALE_PENDING_AFTER = timedelta(minutes=10)


def _minor(amount: Decimal, currency: str) -> int:
    return stripe_provider.stripe_amount(amount, currency)


def _plan(*, note: CreditNote, invoice_id: Any) -> list[Refund]:
    """Split the note's refund over the invoice's succeeded Stripe payments, oldest first, each up
    to what is left of it after earlier refunds. Caller holds the invoice and note locks. Nothing
    is planned (the refund is left to finance) when Stripe did not collect enough of it: a refund
    of money received by bank transfer goes back by bank transfer."""
    currency = note.currency
    payments = list(
        Payment.objects.select_for_update()
        .filter(invoice_id=invoice_id, provider=PaymentProviderName.STRIPE, status=PaymentStatus.SUCCEEDED)
        .exclude(provider_payment_id="")
        .order_by("paid_at", "attempt")
    )
    if not payments:
        return []
    refunded = dict(
        Refund.objects.filter(payment__in=payments)
        .exclude(status=RefundStatus.FAILED)
        .values("payment_id")
        .annotate(total=Sum("amount"))
        .values_list("payment_id", "total")
    )
    # Same conversion as collection: rounded up to a step Stripe accepts (BHD 1.235 -> 1240), so a
    # full refund gives back exactly what the card was charged.
    wanted = _minor(note.refund_amount, currency)
    step = _minor(stripe_provider.chargeable_step(currency), currency)
    planned: list[tuple[Payment, int]] = []
    total = 0
    for payment in payments:
        left = _minor(payment.amount - refunded.get(payment.pk, Decimal(0)), currency)
        take = min(left, wanted - total)
        if take > 0:
            planned.append((payment, take))
            total += take
    # Less than a step short is that rounding up meeting what the card was charged.
    if total <= 0 or wanted - total >= step:
        logger.warning(
            "credit note %s: Stripe collected %s of the %s %s to refund; left to finance",
            note.number,
            stripe_provider.from_stripe_amount(total, currency),
            note.refund_amount,
            currency,
        )
        return []
    refunds = []
    for sequence, (payment, minor) in enumerate(planned, start=1):
        refunds.append(
            Refund.objects.create(
                credit_note=note,
                payment=payment,
                provider=PaymentProviderName.STRIPE,
                status=RefundStatus.PENDING,
                amount=stripe_provider.from_stripe_amount(minor, currency),
                currency=currency,
                idempotency_key=f"tollgate:credit_note:{note.pk}:refund:{sequence}",
            )
        )
    return refunds


def credit_note_refund_start(*, credit_note_id: Any, actor: str = ACTOR) -> list[Refund]:
    """Give a note's pending refund back through Stripe: plan the Refund rows once (under the
    invoice's lock), send the ones still pending, report the outcome to invoicing. Safe to repeat
    (a re-sent signal, a retried task): a planned note is resumed, never planned again, and each
    row is refunded at most once. Returns the note's Refund rows ([] when left to finance)."""
    invoice_id = CreditNote.objects.filter(pk=credit_note_id).values_list("invoice_id", flat=True).first()
    if invoice_id is None:
        return []
    with transaction.atomic():
        lock_invoice(invoice_id)
        note = lock_credit_note(credit_note_id)
        refunds = list(Refund.objects.select_for_update().filter(credit_note=note).order_by("idempotency_key"))
        if not refunds:
            if note.refund_status != NoteRefundStatus.PENDING or note.refund_amount <= 0:
                return []
            if not stripe_provider.is_configured():
                if Payment.objects.filter(invoice_id=invoice_id, provider=PaymentProviderName.STRIPE).exists():
                    logger.error("Stripe is not configured: refund of credit note %s not sent", note.number)
                return []
            refunds = _plan(note=note, invoice_id=invoice_id)
            if not refunds:
                return []
            credit_note_refunds.credit_note_refund_submission_record(
                credit_note=note,
                provider=PaymentProviderName.STRIPE,
                actor=actor,
                details={"refund_ids": [str(refund.pk) for refund in refunds]},
            )
    for refund in refunds:
        if refund.status == RefundStatus.PENDING:
            refund_submit(refund_id=refund.pk)
    return list(Refund.objects.filter(credit_note_id=credit_note_id).order_by("idempotency_key"))


def refund_submit(*, refund_id: Any) -> Refund:
    """Send a pending refund to Stripe (again), or ask Stripe what became of one it answered
    `pending`. An unreachable Stripe leaves it pending for the sweep."""
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    if refund.status != RefundStatus.PENDING:
        return refund
    try:
        if refund.provider_refund_id:
            outcome = stripe_provider.refund_retrieve(refund_id=refund.provider_refund_id)
        else:
            outcome = stripe_provider.refund_create(
                payment_intent_id=refund.payment.provider_payment_id,
                amount=_minor(refund.amount, refund.currency),
                idempotency_key=refund.idempotency_key,
                metadata={
                    "refund_id": str(refund.pk),
                    "credit_note_id": str(refund.credit_note_id),
                    "invoice_id": str(refund.payment.invoice_id),
                },
            )
    except ProviderUnavailable as error:
        logger.warning("Stripe unavailable for refund %s: %s", refund.pk, error)
        Refund.objects.filter(pk=refund.pk).update(updated_at=timezone.now())
        return refund
    return refund_apply_outcome(refund_id=refund.pk, outcome=outcome)


def refund_apply_outcome(*, refund_id: Any, outcome: RefundOutcome, actor: str = ACTOR) -> Refund:
    """Apply what Stripe said about a refund, then settle the note once none of its refunds is
    pending: succeeded when all succeeded, failed (with the reason) otherwise. Idempotent; a
    succeeded refund never moves back."""
    with transaction.atomic():
        refund_row = Refund.objects.select_related("credit_note").get(pk=refund_id)
        lock_invoice(refund_row.credit_note.invoice_id)
        note = lock_credit_note(refund_row.credit_note_id)
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        fields: set[str] = set()
        if outcome.provider_refund_id and not refund.provider_refund_id:
            refund.provider_refund_id = outcome.provider_refund_id
            fields.add("provider_refund_id")
        movable = refund.status == RefundStatus.PENDING or (
            refund.status == RefundStatus.FAILED and outcome.status == RefundStatus.SUCCEEDED
        )
        if outcome.status != refund.status and movable:
            refund.status = outcome.status
            fields.add("status")
            if outcome.status == RefundStatus.SUCCEEDED:
                refund.refunded_at = timezone.now()
                fields.add("refunded_at")
            elif outcome.status == RefundStatus.FAILED:
                refund.failure_code = outcome.failure_code[:255]
                refund.failure_reason = outcome.failure_reason
                fields |= {"failure_code", "failure_reason"}
        if fields:
            refund.save(update_fields=[*sorted(fields), "updated_at"])
        _note_settle(note=note, actor=actor)
    return refund


def _note_settle(*, note: CreditNote, actor: str) -> None:
    statuses = list(Refund.objects.filter(credit_note=note).values_list("status", "failure_reason", "amount"))
    if not statuses or any(status == RefundStatus.PENDING for status, _, _ in statuses):
        return
    if all(status == RefundStatus.SUCCEEDED for status, _, _ in statuses):
        ids = ", ".join(Refund.objects.filter(credit_note=note).values_list("provider_refund_id", flat=True))
        credit_note_refunds.credit_note_refund_status_update(
            credit_note=note, status=NoteRefundStatus.SUCCEEDED, actor=actor, reason=f"stripe {ids}"
        )
        return
    if note.refund_status == NoteRefundStatus.SUCCEEDED:
        return
    refunded = sum((amount for status, _, amount in statuses if status == RefundStatus.SUCCEEDED), Decimal(0))
    reasons = "; ".join(reason for status, reason, _ in statuses if status == RefundStatus.FAILED)
    credit_note_refunds.credit_note_refund_status_update(
        credit_note=note,
        status=NoteRefundStatus.FAILED,
        actor=actor,
        reason=f"{reasons} (refunded through Stripe: {refunded} {note.currency})",
    )


def refund_event_apply(*, refund: dict[str, Any]) -> Refund | None:
    """A Stripe webhook told us about a refund (refund.updated, refund.failed,
    charge.refund.updated): apply it to our row, if it is ours."""
    refund_id = refund.get("id") or ""
    row = Refund.objects.filter(provider=PaymentProviderName.STRIPE, provider_refund_id=refund_id).first()
    if row is None and refund_id:
        ours = (refund.get("metadata") or {}).get("refund_id") or ""
        row = Refund.objects.filter(pk=ours, provider_refund_id="").first() if _is_uuid(ours) else None
    if row is None:
        logger.info("Stripe refund %s is not a Tollgate refund: ignored", refund_id)
        return None
    return refund_apply_outcome(refund_id=row.pk, outcome=stripe_provider.outcome_from_refund(refund))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError):
        return False
    return True


def refunds_sweep_stale(*, now: datetime) -> tuple[int, int]:
    """Re-send refunds left pending (a worker died, Stripe was down, Stripe answered `pending`)
    and start the ones whose request was lost (a note still pending with Stripe payments on its
    invoice and no refund planned). Returns (re-sent, started)."""
    before = now - STALE_PENDING_AFTER
    stale = Refund.objects.filter(
        provider=PaymentProviderName.STRIPE, status=RefundStatus.PENDING, updated_at__lt=before
    ).values_list("pk", flat=True)
    resent = 0
    for refund_id in list(stale):
        refund_submit(refund_id=refund_id)
        resent += 1
    stripe_paid = Payment.objects.filter(
        invoice_id=OuterRef("invoice_id"), provider=PaymentProviderName.STRIPE, status=PaymentStatus.SUCCEEDED
    )
    lost = (
        CreditNote.objects.filter(refund_status=NoteRefundStatus.PENDING, refund_amount__gt=0, created_at__lt=before)
        .filter(Exists(stripe_paid))
        .exclude(Exists(Refund.objects.filter(credit_note_id=OuterRef("pk"))))
        .values_list("pk", flat=True)
    )
    started = 0
    for credit_note_id in list(lost):
        if credit_note_refund_start(credit_note_id=credit_note_id):
            started += 1
    return resent, started
