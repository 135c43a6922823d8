"""Credit notes: corrections of finalized invoices (credit and refund), their numbering
`<invoice number>-CN<nnn>`, and the credit they leave for the customer's next invoices.

Amounts follow Lago (CreditNotes::CreateService, ApplyTaxesService, ValidateService): each item
credits part of one fee; the fee's share of the invoice's coupons is taken off pro rata; each tax
rate applies to the sum of the items' bases it covers and is rounded once. The note that credits
the last of an invoice takes the remainder (coupons and each rate's tax), so the notes of a fully
credited invoice add up to exactly what the invoice charged.

Locking order, always: the credited invoice row (numbering, what is left to credit), then credit
note rows (balances), oldest first. The credit ledger is `Credit` (append-only): for a note,
credit_amount - balance_amount == the sum of its Credit rows, until it is voided.

What counts as "already credited": every earlier note of the invoice, except a voided note that
gave nothing (no refund, none of its credit consumed): such a note is as if it never existed.
A voided note that gave something keeps all it credited (Lago never reopens a voided note).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from billing_project.after_commit import delay_after_commit, send_after_commit
from billing_project.money import quantum, round_amount, to_cents
from plans import periods
from plans.models import Subscription

from . import locks, totals
from .errors import InvoicingError, NotAllowedError, NotFoundError
from .models import (
    Credit,
    CreditNote,
    CreditNoteAppliedTax,
    CreditNoteItem,
    CreditNoteReason,
    CreditNoteStatus,
    CreditStatus,
    Fee,
    FeeAppliedTax,
    FeeType,
    Invoice,
    InvoiceAppliedTax,
    InvoiceEvent,
    InvoiceStatus,
    InvoiceType,
    RefundStatus,
)
from .signals import credit_note_created_in_tx, credit_note_refund_requested

ZERO = Decimal(0)
RATE_QUANTUM = Decimal("0.0001")  # CreditNote.taxes_rate has 4 decimals
PRECISE_QUANTUM = Decimal(1).scaleb(-20)  # the PRECISE fields keep 20 decimals


# --- Figures (pure once the rows are loaded) -----------------------------------------------------


@dataclass(frozen=True)
class ItemFigures:
    fee: Fee
    amount: Decimal  # rounded to the currency's minor unit
    precise_amount: Decimal


@dataclass
class TaxFigures:
    tax_id: Any
    tax_code: str
    tax_name: str
    tax_rate: Decimal
    tax_description: str
    precise_base: Decimal = ZERO
    base_amount: Decimal = ZERO
    amount: Decimal = ZERO


@dataclass
class CreditNoteFigures:
    currency: str
    items: list[ItemFigures]
    coupons_adjustment: Decimal
    precise_coupons_adjustment: Decimal
    sub_total_excluding_taxes: Decimal
    taxes: list[TaxFigures] = field(default_factory=list)
    precise_taxes_amount: Decimal = ZERO
    taxes_amount: Decimal = ZERO
    taxes_rate: Decimal = ZERO
    total: Decimal = ZERO
    # What is left to credit on the invoice and to refund from what was paid, before this note.
    remaining: Decimal = ZERO
    refundable: Decimal = ZERO
    credits_everything_left: bool = False


def _item_coupon_share(fee: Fee, precise_amount: Decimal) -> Decimal:
    """The part of the fee's coupons that falls on `precise_amount` of it (Lago's item_fee_rate)."""
    if not fee.amount:
        return ZERO
    return fee.precise_coupons_amount * precise_amount / fee.amount


def _counted_notes(invoice: Invoice, *, exclude_id: Any = None) -> QuerySet[CreditNote]:
    """The invoice's notes that count as already credited (see the module docstring)."""
    consumed = Credit.objects.filter(credit_note_id=OuterRef("pk")).exclude(invoice__status=InvoiceStatus.VOIDED)
    gave_nothing = Q(credit_status=CreditStatus.VOIDED, refund_amount=0) & ~Exists(consumed)
    notes = CreditNote.objects.filter(invoice_id=invoice.pk).exclude(gave_nothing)
    return notes.exclude(pk=exclude_id) if exclude_id else notes


def _figures(*, invoice: Invoice, items: list[tuple[Fee | None, Decimal]]) -> CreditNoteFigures:
    """Validate the items against what is left to credit on each fee and compute the note's
    amounts. Raises NotFoundError("fee") or InvoicingError (Lago's codes)."""
    currency = invoice.currency
    if not isinstance(items, list | tuple):
        raise InvoicingError.field("items", "must_be_an_array")

    counted = _counted_notes(invoice)
    invoice_fees: dict[Any, Fee] = {
        fee.pk: fee
        for fee in Fee.objects.filter(invoice_id=invoice.pk).prefetch_related("applied_taxes").order_by("created_at")
    }
    credited_by_fee = dict(
        CreditNoteItem.objects.filter(credit_note__in=counted)
        .values("fee_id")
        .annotate(total=Sum("amount"))
        .values_list("fee_id", "total")
    )

    figures_items: list[ItemFigures] = []
    this_note_by_fee: dict[Any, Decimal] = {}
    errors: dict[str, list[str]] = {}
    for fee, amount in items:
        known = invoice_fees.get(getattr(fee, "pk", None))
        if known is None:
            raise NotFoundError("fee")
        try:
            precise = Decimal(amount)
        except (TypeError, ArithmeticError, ValueError):
            raise InvoicingError.field("amount_cents", "invalid_value") from None
        if not precise.is_finite() or precise < 0:
            errors.setdefault("amount_cents", []).append("invalid_value")
            continue
        precise = precise.quantize(PRECISE_QUANTUM)
        rounded = round_amount(precise, currency)
        this_note_by_fee[known.pk] = this_note_by_fee.get(known.pk, ZERO) + rounded
        if this_note_by_fee[known.pk] > known.amount - credited_by_fee.get(known.pk, ZERO):
            codes = errors.setdefault("amount_cents", [])
            if "higher_than_remaining_fee_amount" not in codes:
                codes.append("higher_than_remaining_fee_amount")
            continue
        figures_items.append(ItemFigures(fee=known, amount=rounded, precise_amount=precise))
    if errors:
        raise InvoicingError(errors)

    credits_everything_left = bool(invoice_fees) and all(
        credited_by_fee.get(pk, ZERO) + this_note_by_fee.get(pk, ZERO) >= fee.amount for pk, fee in invoice_fees.items()
    )

    # Coupons: each item carries its fee's coupon share pro rata.
    precise_coupons = sum((_item_coupon_share(i.fee, i.precise_amount) for i in figures_items), ZERO)
    earlier = counted.aggregate(
        coupons=Sum("coupons_adjustment_amount"),
        total=Sum("total_amount"),
        refunded=Sum("refund_amount"),
    )
    coupons_left = max(invoice.coupons_amount - (earlier["coupons"] or ZERO), ZERO)
    if credits_everything_left:
        coupons_adjustment = coupons_left
    else:
        # Never more than the invoice's coupons not yet taken back: notes each rounding their
        # share up (0.155 -> 0.16 twice, 0.0296 -> 0.03, of 0.34) would take back 0.35, and the
        # last note, which cannot give a coupon back, would leave the notes a cent short.
        coupons_adjustment = min(round_amount(precise_coupons, currency), coupons_left)
    items_amount = sum((i.amount for i in figures_items), ZERO)
    coupons_adjustment = min(coupons_adjustment, items_amount)
    sub_total = items_amount - coupons_adjustment

    # Taxes: per rate, on the sum of the bases of the items whose fee carries it, rounded once.
    invoice_taxes = {t.tax_code: t for t in InvoiceAppliedTax.objects.filter(invoice_id=invoice.pk)}
    by_code: dict[str, TaxFigures] = {}
    for item in figures_items:
        base = item.precise_amount - _item_coupon_share(item.fee, item.precise_amount)
        fee_tax: FeeAppliedTax
        for fee_tax in item.fee.applied_taxes.all():
            source: Any = invoice_taxes.get(fee_tax.tax_code, fee_tax)
            line = by_code.get(fee_tax.tax_code)
            if line is None:
                line = by_code[fee_tax.tax_code] = TaxFigures(
                    tax_id=source.tax_id,
                    tax_code=source.tax_code,
                    tax_name=source.tax_name,
                    tax_rate=source.tax_rate,
                    tax_description=source.tax_description,
                )
            line.precise_base += base
    precise_taxes = ZERO
    for line in by_code.values():
        precise_tax = totals.tax_on(line.precise_base, line.tax_rate)
        precise_taxes += precise_tax
        line.base_amount = round_amount(line.precise_base, currency)
        line.amount = round_amount(precise_tax, currency)
    if credits_everything_left:
        # The last note takes what the invoice charged for each rate minus what earlier notes took
        # (a rate its own items do not carry included), so the notes add up to the invoice exactly.
        # A rate's remainder may be a cent below zero when earlier notes' roundings overshot it.
        earlier_taxes = {
            row["tax_code"]: row
            for row in CreditNoteAppliedTax.objects.filter(credit_note__in=counted)
            .values("tax_code")
            .annotate(amount=Sum("amount"), base=Sum("base_amount"))
        }
        for code, charged in invoice_taxes.items():
            before: Mapping[str, Any] = earlier_taxes.get(code, {})
            amount = charged.amount - (before.get("amount") or ZERO)
            base_amount = charged.fees_amount - (before.get("base") or ZERO)
            line = by_code.get(code)
            if line is None:
                if not amount and not base_amount:
                    continue
                line = by_code[code] = TaxFigures(
                    tax_id=charged.tax_id,
                    tax_code=charged.tax_code,
                    tax_name=charged.tax_name,
                    tax_rate=charged.tax_rate,
                    tax_description=charged.tax_description,
                )
            line.amount = amount
            line.base_amount = base_amount

    remaining = max(invoice.sub_total_including_taxes_amount - (earlier["total"] or ZERO), ZERO)
    refundable = max(invoice.total_paid_amount - (earlier["refunded"] or ZERO), ZERO)

    # Rounding each note's taxes half-up can take, over several notes, a minor unit more than the
    # invoice charged (0.0855 -> 0.09 here, 0.0969 -> 0.10 there, 0.1824 -> 0.18 on the invoice).
    # The items never exceed what is left on each fee, so an excess of a few minor units is such
    # rounding: it comes off the taxes (largest line first), then off the coupons' side.
    q = quantum(currency)
    excess = sub_total + sum((line.amount for line in by_code.values()), ZERO) - remaining
    if ZERO < excess <= q * (len(by_code) + 1):
        for line in sorted(by_code.values(), key=lambda line: line.amount, reverse=True):
            cut = min(max(line.amount, ZERO), excess)
            line.amount -= cut
            excess -= cut
        if excess > 0:
            coupons_adjustment += min(excess, sub_total)
            sub_total = items_amount - coupons_adjustment

    taxes_amount = sum((line.amount for line in by_code.values()), ZERO)
    taxable_items = sum((i.precise_amount for i in figures_items), ZERO) - precise_coupons
    taxes_rate = ZERO
    if taxable_items:
        # Lago's pro-rated rate: each rate weighted by the share of the items it applies to.
        taxes_rate = sum((line.precise_base / taxable_items * line.tax_rate for line in by_code.values()), ZERO)

    return CreditNoteFigures(
        currency=currency,
        items=figures_items,
        coupons_adjustment=coupons_adjustment,
        precise_coupons_adjustment=precise_coupons,
        sub_total_excluding_taxes=sub_total,
        taxes=sorted(by_code.values(), key=lambda line: line.tax_code),
        precise_taxes_amount=precise_taxes,
        taxes_amount=taxes_amount,
        taxes_rate=taxes_rate.quantize(RATE_QUANTUM),
        total=sub_total + taxes_amount,
        remaining=remaining,
        refundable=refundable,
        credits_everything_left=credits_everything_left,
    )


def _check_invoice(invoice: Invoice) -> None:
    # Lago: not_allowed "invalid_type_or_status". Tollgate credits finalized invoices only (a draft
    # is refreshed instead; a voided one owes nothing) and has no wallets for credit invoices yet.
    if invoice.status != InvoiceStatus.FINALIZED or invoice.invoice_type == InvoiceType.CREDIT:
        raise NotAllowedError("invalid_type_or_status")


def _split(
    figures: CreditNoteFigures, credit_amount: Decimal | None, refund_amount: Decimal | None
) -> tuple[Decimal, Decimal]:
    """credit + refund == total. Nothing given: all credited. One given: the other is zero (as
    Lago). A difference of one minor unit (a caller rounding taxes its own way) is absorbed by the
    credit (or the refund when nothing is credited), as Lago's AdjustAmountsWithRoundingService."""
    currency = figures.currency
    if credit_amount is None and refund_amount is None:
        return figures.total, ZERO
    credit = round_amount(Decimal(credit_amount or 0), currency)
    refund = round_amount(Decimal(refund_amount or 0), currency)
    errors: dict[str, list[str]] = {}
    if credit < 0:
        errors["credit_amount_cents"] = ["value_is_invalid"]
    if refund < 0:
        errors["refund_amount_cents"] = ["value_is_invalid"]
    if errors:
        raise InvoicingError(errors)
    if credit + refund != figures.total and abs(credit + refund - figures.total) <= quantum(currency):
        if credit > 0:
            credit = figures.total - refund
        else:
            refund = figures.total
    return credit, refund


def _validate(figures: CreditNoteFigures, credit: Decimal, refund: Decimal, invoice: Invoice) -> None:
    """Lago's ValidateService, collecting every error."""
    total = credit + refund
    errors: dict[str, list[str]] = {}

    def add(name: str, code: str) -> None:
        errors.setdefault(name, []).append(code)

    if total != figures.total:
        add("base", "does_not_match_item_amounts")
    if refund > 0:
        if invoice.total_paid_amount <= 0:
            add("refund_amount_cents", "cannot_refund_unpaid_invoice")
        elif refund > figures.refundable:
            add("refund_amount_cents", "higher_than_remaining_invoice_amount")
    if credit > figures.remaining:
        add("credit_amount_cents", "higher_than_remaining_invoice_amount")
    if total > figures.remaining:
        add("base", "higher_than_remaining_invoice_amount")
    if total <= 0:
        add("base", "total_amount_must_be_positive")
    if errors:
        raise InvoicingError(errors)


def _lock_invoice(invoice: Invoice) -> Invoice:
    return locks.lock_invoice(invoice)


def _issuing_date(invoice: Invoice) -> Any:
    """Today in the customer's timezone (the accounting date, as Lago)."""
    return timezone.now().astimezone(ZoneInfo(invoice.customer.applicable_timezone())).date()


def _money_payload(note: CreditNote) -> dict[str, Any]:
    currency = note.currency
    return {
        "credit_note_id": str(note.pk),
        "number": note.number,
        "reason": note.reason,
        "currency": currency,
        "credit_amount_cents": to_cents(note.credit_amount, currency),
        "refund_amount_cents": to_cents(note.refund_amount, currency),
        "total_amount_cents": to_cents(note.total_amount, currency),
    }


def note_event(*, note: CreditNote, invoice_id: Any, kind: str, actor: str, payload: dict[str, Any]) -> None:
    InvoiceEvent.objects.create(invoice_id=invoice_id, credit_note=note, kind=kind, actor=actor, payload=payload)


# --- Services ------------------------------------------------------------------------------------


def credit_note_create(
    *,
    invoice: Invoice,
    reason: str,
    items: list[tuple[Fee | None, Decimal]],
    description: str = "",
    credit_amount: Decimal | None = None,
    refund_amount: Decimal | None = None,
    actor: str,
    draft: bool = False,
) -> CreditNote:
    """Issue a credit note on a finalized invoice. `items` pairs fees of the invoice with the
    amount (before coupons and taxes, major units) credited on each. `credit_amount` and
    `refund_amount` split the total (taxes included); both None credits it all.

    `draft`: a proposal (credit only) that waits for `credit_note_finalize`: validated and priced
    like a note, but with no number, no credit to consume, no PDF, e-mail nor webhook."""
    with transaction.atomic():
        # A draft takes nothing from the invoice's series nor its credit: no lock needed (its
        # figures are computed again, under the lock, when it is finalized).
        if draft:
            invoice = Invoice.objects.select_related("customer").get(pk=invoice.pk)
        else:
            invoice = _lock_invoice(invoice)
        _check_invoice(invoice)
        if reason not in CreditNoteReason.values:
            raise InvoicingError.field("reason", "value_is_invalid")
        figures = _figures(invoice=invoice, items=items)
        credit, refund = _split(figures, credit_amount, refund_amount)
        _validate(figures, credit, refund, invoice)
        if draft and refund:
            raise InvoicingError.field("refund_amount_cents", "value_is_invalid")
        note = CreditNote(
            invoice=invoice,
            customer_id=invoice.customer_id,
            status=CreditNoteStatus.DRAFT,
            reason=reason,
            description=description or "",
            currency=invoice.currency,
        )
        _write_figures(note, figures, credit=credit, refund=refund, created=True)
        if not draft:
            _issue(note, invoice=invoice, actor=actor)
    return note


def _write_figures(
    note: CreditNote, figures: CreditNoteFigures, *, credit: Decimal, refund: Decimal, created: bool
) -> None:
    """The note's amounts, items and taxes from `figures` (a draft's replaced when it is finalized)."""
    note.issuing_date = _issuing_date(note.invoice)
    note.credit_amount = credit
    note.refund_amount = refund
    note.sub_total_excluding_taxes_amount = figures.sub_total_excluding_taxes
    note.coupons_adjustment_amount = figures.coupons_adjustment
    note.taxes_amount = figures.taxes_amount
    note.taxes_rate = figures.taxes_rate
    note.total_amount = credit + refund
    if created:
        note.save(force_insert=True)
    else:
        note.save()
        CreditNoteItem.objects.filter(credit_note=note).delete()
        CreditNoteAppliedTax.objects.filter(credit_note=note).delete()
    CreditNoteItem.objects.bulk_create(
        CreditNoteItem(credit_note=note, fee=item.fee, amount=item.amount, precise_amount=item.precise_amount)
        for item in figures.items
    )
    CreditNoteAppliedTax.objects.bulk_create(
        CreditNoteAppliedTax(
            credit_note=note,
            tax_id=line.tax_id,
            tax_code=line.tax_code,
            tax_name=line.tax_name,
            tax_rate=line.tax_rate,
            tax_description=line.tax_description,
            base_amount=line.base_amount,
            amount=line.amount,
        )
        for line in figures.taxes
    )


def _issue(note: CreditNote, *, invoice: Invoice, actor: str) -> None:
    """Inside the transaction, the invoice locked: the note takes the invoice's next number and
    its credit becomes available; its history row, webhook, e-mail, refund and PDF follow."""
    last = CreditNote.objects.filter(invoice_id=invoice.pk).order_by("-sequential_id").first()
    note.sequential_id = ((last.sequential_id or 0) if last else 0) + 1
    note.number = f"{invoice.number}-CN{note.sequential_id:03d}"
    note.status = CreditNoteStatus.FINALIZED
    note.credit_status = CreditStatus.AVAILABLE if note.credit_amount > 0 else None
    note.refund_status = RefundStatus.PENDING if note.refund_amount > 0 else None
    note.balance_amount = note.credit_amount
    note.save(
        update_fields=[
            "sequential_id",
            "number",
            "status",
            "credit_status",
            "refund_status",
            "balance_amount",
            "updated_at",
        ]
    )
    note_event(
        note=note,
        invoice_id=invoice.pk,
        kind="credit_note_created",
        actor=actor,
        payload=_money_payload(note),
    )
    credit_note_created_in_tx.send(sender=CreditNote, credit_note_id=note.pk)
    if note.refund_amount > 0:
        # After commit, so a rolled-back note never reaches payments (no refund of a note that
        # does not exist); robust, so a failing receiver never turns a committed note into an error.
        send_after_commit(credit_note_refund_requested, sender=CreditNote, credit_note_id=note.pk)
    # Rendered by a task like an invoice's PDF, never inside the request.
    from .tasks import render_credit_note_pdf

    delay_after_commit(render_credit_note_pdf, str(note.pk))


def credit_note_finalize(*, credit_note: CreditNote, actor: str) -> CreditNote:
    """Finalize a draft note: priced again against the notes issued since it was drafted (what is
    left on each fee, the last note's remainders), then numbered and issued. Finalizing a
    finalized note again changes nothing (as invoice_finalize)."""
    with transaction.atomic():
        invoice = locks.lock_invoice(credit_note.invoice_id)
        note = locks.lock_credit_note(credit_note)
        if note.status != CreditNoteStatus.DRAFT:
            return note
        _check_invoice(invoice)
        items: list[tuple[Fee | None, Decimal]] = [
            (item.fee, item.precise_amount) for item in note.items.select_related("fee").order_by("created_at", "id")
        ]
        figures = _figures(invoice=invoice, items=items)
        credit, refund = _split(figures, None, None)
        _validate(figures, credit, refund, invoice)
        note.invoice = invoice
        _write_figures(note, figures, credit=credit, refund=refund, created=False)
        _issue(note, invoice=invoice, actor=actor)
    return note


def credit_note_draft_delete(*, credit_note: CreditNote) -> None:
    """A draft goes (refused or replaced by a newer proposal): it never took a number nor credit."""
    CreditNote.all_objects.filter(pk=credit_note.pk, status=CreditNoteStatus.DRAFT).delete()


def credit_note_create_for_unused_subscription_fee(
    *, fee: Fee, amount: Decimal, actor: str, refund_paid: bool = False, once: bool = False
) -> CreditNote | None:
    """A note (reason order_change) for the unused part of a subscription fee paid in advance,
    when the subscription is upgraded or terminated: credit only, or with `refund_paid` the part
    the customer paid refunded and the rest credited (Lago's CreditNotes::CreateFromTermination,
    `refund`). `amount` is before coupons and taxes (both are applied pro rata); it is capped at
    what is left to credit on the fee. None when there is nothing to credit, the fee's invoice is
    not finalized (a draft is refreshed instead), or (`once`) an order_change note on the fee
    exists already (checked under the invoice's lock, so a retried task credits once)."""
    amount = Decimal(amount)
    if amount <= 0:
        return None
    with transaction.atomic():
        assert fee.invoice is not None  # a subscription fee is always on an invoice
        invoice = _lock_invoice(fee.invoice)
        if invoice.status != InvoiceStatus.FINALIZED:
            return None
        if (
            once
            and CreditNoteItem.objects.filter(fee_id=fee.pk, credit_note__reason=CreditNoteReason.ORDER_CHANGE).exists()
        ):
            return None
        credited = CreditNoteItem.objects.filter(credit_note__in=_counted_notes(invoice), fee_id=fee.pk).aggregate(
            total=Sum("amount")
        )["total"]
        left = fee.amount - (credited or ZERO)
        if round_amount(amount, invoice.currency) > left:
            amount = left
        if amount <= 0:
            return None
        credit = refund = None
        if refund_paid:
            figures = _figures(invoice=invoice, items=[(fee, amount)])
            refund = min(figures.total, figures.refundable)
            credit = figures.total - refund
        return credit_note_create(
            invoice=invoice,
            reason=CreditNoteReason.ORDER_CHANGE,
            items=[(fee, amount)],
            description="Credit for the unused part of the subscription fee",
            credit_amount=credit,
            refund_amount=refund,
            actor=actor,
        )


def credit_note_create_for_unused_advance_fee(
    *, subscription: Subscription, upgraded: bool, actor: str, once: bool = False
) -> CreditNote | None:
    """At the end of a subscription on a plan paid in advance: a credit note for the unused days
    of the fee paid for the period it ended in, as Lago: amount x unused days / days paid for.
    An upgrade's switch day is unused (the new plan bills it).

    A termination follows the subscription's `on_termination_credit_note` (Lago's
    Subscriptions::TerminateService): credit (the default), refund (what was paid is refunded,
    the rest credited), skip (no note). Tollgate has no offset amount on credit notes yet: offset
    refunds what was paid and credits the rest, as refund does (README). An upgrade always credits."""
    end = subscription.terminated_at
    if not subscription.plan.pay_in_advance or end is None:
        return None
    mode = "credit" if upgraded else (subscription.on_termination_credit_note or "credit")
    if mode == "skip":
        return None
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
        return None
    assert fee.from_datetime is not None and fee.to_datetime is not None  # the filter compared both
    tz = periods.subscription_timezone(subscription)
    paid = periods.clip_to(periods.subscription_period(subscription, fee.from_datetime), fee.to_datetime, tz)
    used = periods.clip_to(paid, end, tz, end_day_used=not upgraded)
    if paid.days <= 0 or used.days >= paid.days:
        return None
    amount = round_amount(fee.amount * Decimal(paid.days - used.days) / Decimal(paid.days), fee.currency)
    return credit_note_create_for_unused_subscription_fee(
        fee=fee, amount=amount, actor=actor, refund_paid=mode in ("refund", "offset"), once=once
    )


def credit_note_void(*, credit_note: CreditNote, actor: str) -> CreditNote:
    """Cancel what is left of a note's credit (Lago: only while some credit is available;
    otherwise not_allowed "no_voidable_amount"). Refunds and consumed credit stay as they are."""
    with transaction.atomic():
        note = locks.lock_credit_note(credit_note)
        if note.credit_status != CreditStatus.AVAILABLE or note.balance_amount <= 0:
            raise NotAllowedError("no_voidable_amount")
        voided_amount = note.balance_amount
        note.credit_status = CreditStatus.VOIDED
        note.balance_amount = ZERO
        note.voided_at = timezone.now()
        note.save(update_fields=["credit_status", "balance_amount", "voided_at", "updated_at"])
        note_event(
            note=note,
            invoice_id=note.invoice_id,
            kind="credit_note_voided",
            actor=actor,
            payload={**_money_payload(note), "voided_amount_cents": to_cents(voided_amount, note.currency)},
        )
    return note


@dataclass(frozen=True)
class CreditNoteEstimate:
    """What a note with some items would be (`figures`), and what it could credit and refund at most."""

    figures: CreditNoteFigures
    max_creditable: Decimal
    max_refundable: Decimal


def credit_note_estimate(*, invoice: Invoice, items: list[tuple[Fee | None, Decimal]]) -> CreditNoteEstimate:
    """Lago's estimate: what a note with these items would credit at most and refund at most
    (read only)."""
    _check_invoice(invoice)
    figures = _figures(invoice=invoice, items=items)
    max_creditable = min(figures.total, figures.remaining)
    return CreditNoteEstimate(
        figures=figures, max_creditable=max_creditable, max_refundable=min(max_creditable, figures.refundable)
    )


# --- Consumption by the customer's next invoices -------------------------------------------------


def _available_notes(*, customer_id: Any, currency: str) -> QuerySet[CreditNote]:
    return CreditNote.objects.filter(
        customer_id=customer_id, currency=currency, credit_status=CreditStatus.AVAILABLE, balance_amount__gt=0
    )


def credit_notes_available(*, customer: Any, currency: str) -> Decimal:
    """Credit left to consume for the customer in `currency` (read only, no lock)."""
    total = _available_notes(customer_id=customer.pk, currency=currency).aggregate(total=Sum("balance_amount"))
    return total["total"] or ZERO


def credit_notes_apply(*, invoice: Invoice, amount: Decimal) -> Decimal:
    """Inside the caller's transaction: consume up to `amount` of the customer's available credit,
    oldest note first, with the notes' rows locked; write a Credit row (after taxes) on `invoice`
    per note used. Returns what was applied (0 when nothing is available)."""
    currency = invoice.currency
    wanted = round_amount(Decimal(amount), currency)
    if wanted <= 0:
        return ZERO
    applied = ZERO
    with transaction.atomic():
        notes = (
            _available_notes(customer_id=invoice.customer_id, currency=currency)
            .exclude(invoice_id=invoice.pk)
            .select_for_update()
            .order_by("created_at", "sequential_id", "id")
        )
        for note in notes:
            take = min(note.balance_amount, wanted - applied)
            if take <= 0:
                break
            Credit.objects.create(invoice=invoice, credit_note=note, amount=take, before_taxes=False)
            note.balance_amount -= take
            if note.balance_amount == 0:
                note.credit_status = CreditStatus.CONSUMED
            note.save(update_fields=["balance_amount", "credit_status", "updated_at"])
            applied += take
            if applied >= wanted:
                break
    return applied


def credit_notes_recredit(*, invoice: Invoice, actor: str) -> Decimal:
    """Give back to their notes the credit a voided invoice consumed: each note's balance is
    restored, except on notes voided since (their credit is gone, as Lago's RecreditService).
    The invoice's Credit rows stay (an append-only ledger: the voided invoice still shows what
    it consumed, matching its frozen credit_notes_amount); credits on voided invoices no longer
    count as consumed. Call once, when the invoice is voided. Returns what was given back."""
    restored = ZERO
    with transaction.atomic():
        credits = list(
            Credit.objects.filter(invoice_id=invoice.pk, credit_note__isnull=False)
            .select_for_update(of=("self",))
            .order_by("credit_note_id")
        )
        by_note: dict[Any, Decimal] = {}
        for credit in credits:
            by_note[credit.credit_note_id] = by_note.get(credit.credit_note_id, ZERO) + credit.amount
        notes = CreditNote.objects.select_for_update().filter(pk__in=by_note).order_by("created_at", "id")
        for note in notes:
            if note.credit_status == CreditStatus.VOIDED:
                continue
            given_back = by_note[note.pk]
            CreditNote.objects.filter(pk=note.pk).update(
                balance_amount=F("balance_amount") + given_back,
                credit_status=CreditStatus.AVAILABLE,
                updated_at=timezone.now(),
            )
            restored += given_back
            note_event(
                note=note,
                invoice_id=invoice.pk,
                kind="credit_note_recredited",
                actor=actor,
                payload={"credit_note_id": str(note.pk), "amount_cents": to_cents(given_back, note.currency)},
            )
    return restored
