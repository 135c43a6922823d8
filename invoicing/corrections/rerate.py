"""Re-rating a finalized subscription-period with every event stored now, through the period
run's own fee computation (billing.charge_fees), into a correction: the increase as an invoice
of type `correction`, the decrease as a credit note (reason order_change) on the original."""

# Each line is priced as (the whole period recomputed) - (what was invoiced for it so far), so a
# graduated tier crossed by the late units, a package rounded on the total and a percentage's
# free units all come out right. Coupons are not applied again; each fee keeps its line's taxes.
#
# Consistency: the recomputation, the late events and their lineage are read in ONE snapshot (the
# transaction is REPEATABLE READ), so a correction covers exactly the events committed before it
# started and a batch committed meanwhile is left for the next round. The unique (original
# invoice, late events digest) and the lineage's unique (root fee, event) keep a racing run from
# writing a second correction: it rolls back and counts the period as skipped.

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from billing_project.money import round_amount
from customers.models import LateUsagePolicy, Organization
from plans.models import Subscription

from .. import billing, credit_notes, numbering
from ..models import (
    CreditNote,
    CreditNoteReason,
    CreditNoteStatus,
    Fee,
    FeeType,
    Invoice,
    InvoiceEvent,
    InvoiceStatus,
    InvoiceSubscription,
    InvoiceType,
    InvoicingReason,
)
from . import lineage
from .models import Correction, CorrectionStatus, FeeEvent, LateUsageMark

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
_ATTEMPTS = 5
DECREASE_DESCRIPTION = "Late usage: the period re-rated with every event stored"


@dataclass
class RerateSummary:
    corrections: int = 0
    credit_notes: int = 0
    unchanged: int = 0
    skipped: int = 0
    too_late: int = 0
    failed: int = 0
    ignored: int = 0
    correction_ids: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "corrections": self.corrections,
            "credit_notes": self.credit_notes,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "too_late": self.too_late,
            "failed": self.failed,
            "ignored": self.ignored,
        }


def _key(fee: Fee) -> tuple[Any, ...]:
    """A line of a period: its charge, bucket, group and whether it is a true-up."""
    grouped = tuple(sorted((fee.grouped_by or {}).items()))
    return (fee.charge_id, fee.charge_filter_id, grouped, lineage.is_true_up(fee))


@dataclass
class _Line:
    root: Fee | None = None
    amount: Decimal = ZERO
    precise: Decimal = ZERO
    units: Decimal = ZERO


def _invoiced_lines(
    original: Invoice, *, subscription_id: Any, issued: list[Correction]
) -> dict[tuple[Any, ...], _Line]:
    """What was invoiced per line: the original's fees, plus the fees of issued corrections
    (one query), minus the decreases credited by the `issued` corrections (a draft correction is
    about to be replaced: not counted)."""
    lines: dict[tuple[Any, ...], _Line] = {}
    fees = Fee.objects.filter(
        Q(invoice=original, fee_type=FeeType.CHARGE, pay_in_advance=False)
        | Q(invoice__corrected_invoice=original, invoice__status=InvoiceStatus.FINALIZED),
        subscription_id=subscription_id,
    )
    # The original's fees first (a line's root), then the corrections' in their order.
    ordered = sorted(fees, key=lambda fee: (fee.invoice_id != original.pk, fee.created_at, str(fee.pk)))
    by_id: dict[Any, Fee] = {}
    for fee in ordered:
        by_id[fee.pk] = fee
        line = lines.setdefault(_key(fee), _Line())
        line.root = line.root or fee
        line.amount += fee.amount
        line.precise += fee.precise_amount
        line.units += fee.units
    for correction in issued:
        for decrease in correction.decreases:
            credited = by_id.get(_uuid(decrease["fee_id"]))
            if credited is not None:
                line = lines[_key(credited)]
                line.amount -= Decimal(decrease["amount"])
                line.precise -= Decimal(decrease["amount"])
                line.units -= Decimal(decrease.get("units", "0"))
    return lines


def _uuid(value: Any) -> Any:
    import uuid

    return uuid.UUID(str(value))


@dataclass
class _Outcome:
    status: str  # created | unchanged | skipped
    correction: Correction | None = None


def _repeatable_read() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def _is_transient(error: OperationalError) -> bool:
    return getattr(error.__cause__, "sqlstate", None) in {"40001", "40P01"}


def period_rerate(
    *,
    invoice_subscription: InvoiceSubscription,
    policy: str,
    actor: str,
    now: datetime | None = None,
    organization: Organization | None = None,
) -> _Outcome:
    """Re-rate one finalized subscription-period: a correction (draft under `review`, issued
    under `correct`), nothing when no late event changed it, `skipped` when a racing run wrote
    the same correction first."""
    now = now or timezone.now()
    # Inside a caller's transaction (tests) the snapshot is the caller's; else one of our own.
    outer = connection.in_atomic_block
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with transaction.atomic():
                if not outer:
                    _repeatable_read()
                outcome = _rerate(invoice_subscription, actor=actor, now=now, organization=organization)
            break
        except IntegrityError:
            return _Outcome("skipped")
        except OperationalError as error:
            if outer or not _is_transient(error) or attempt == _ATTEMPTS:
                raise
            time.sleep(random.uniform(0, 0.02 * 2**attempt))
    if outcome.correction is not None and policy == LateUsagePolicy.CORRECT:
        correction_issue(correction=outcome.correction, actor=actor, now=now)
    return outcome


def _rerate(
    invoice_subscription: InvoiceSubscription, *, actor: str, now: datetime, organization: Organization | None
) -> _Outcome:
    from ..services import RunContext, invoice_complete, window_of

    if InvoiceSubscription.invoice.is_cached(invoice_subscription):
        original = invoice_subscription.invoice  # finalized, so the same in any snapshot
    else:
        original = Invoice.objects.select_related("customer").get(pk=invoice_subscription.invoice_id)
    subscription = billing.with_billing_relations(
        Subscription.objects.filter(pk=invoice_subscription.subscription_id)
    ).get()
    period = window_of(subscription, invoice_subscription).charges_period
    if period is None:
        return _Outcome("unchanged")
    corrections = list(
        Correction.objects.filter(
            original_invoice=original, status__in=[CorrectionStatus.DRAFT, CorrectionStatus.ISSUED]
        ).order_by("created_at")
    )
    draft = next((c for c in corrections if c.status == CorrectionStatus.DRAFT), None)
    issued = [c for c in corrections if c.status == CorrectionStatus.ISSUED]
    invoiced = _invoiced_lines(original, subscription_id=subscription.pk, issued=issued)

    # The whole period again, with every event stored now: the period run's own computation.
    usage = billing.DirectUsage()
    recomputed: list[Fee] = []
    for charge in billing.arrears_charges(subscription):
        recomputed.extend(billing.charge_fees(subscription, charge, period, usage=usage))
    entries = []
    for tag, fee in enumerate(recomputed):
        scope = lineage.period_fee_scope(fee)
        line = invoiced.get(_key(fee))
        if scope is not None:
            entries.append(
                lineage.Entry(tag=tag, fee_id=None, root_id=line.root.pk if line and line.root else None, scope=scope)
            )
    late = lineage.late_events(entries, ignoring_correction=draft.pk if draft else None)
    if late.count == 0 or (draft is not None and draft.events_digest == late.digest):
        return _Outcome("unchanged")

    # Lines that received late events (and their charge's true-up) change; no other line does.
    late_charges = {recomputed[tag].charge_id for tag in late.count_by_tag}
    increases: list[Fee] = []
    decreases: list[dict[str, Any]] = []
    fee_for_tag: dict[int, Fee | None] = {}
    currency = original.currency
    for tag, fee in enumerate(recomputed):
        if tag not in late.count_by_tag and not (lineage.is_true_up(fee) and fee.charge_id in late_charges):
            continue
        line = invoiced.get(_key(fee)) or _Line()
        delta = round_amount(round_amount(fee.amount, currency) - line.amount, currency)
        if delta > 0:
            correction_fee = _correction_fee(fee, line, delta, events_count=late.count_by_tag.get(tag, 0))
            increases.append(correction_fee)
            fee_for_tag[tag] = correction_fee
        elif delta < 0 and line.root is not None:
            decreases.append(
                {"fee_id": str(line.root.pk), "amount": str(-delta), "units": str((line.units - fee.units).normalize())}
            )
    if draft is not None:
        _supersede(draft)
    correction = Correction.objects.create(
        original_invoice=original,
        events_digest=late.digest,
        events_count=late.count,
        status=CorrectionStatus.DRAFT,
        decreases=decreases,
        actor=actor,
    )
    if decreases:
        # Less owed: a draft credit note on the original (no number until it is issued).
        correction.credit_note = _draft_credit_note(original, decreases, actor=actor)
        correction.save(update_fields=["credit_note", "updated_at"])
    if increases:
        organization = organization or Organization.current()
        invoice = _correction_invoice(original, organization=organization, now=now)
        context = RunContext(organization=organization, customers_with_coupons=set(), customers_with_credit=set())
        invoice_complete(
            invoice=invoice,
            fees=increases,
            context=context,
            finalize=False,
            actor=actor,
            now=now,
            payload={"reason": "late_usage", "corrected_invoice_id": str(original.pk)},
        )
        correction.invoice = invoice
        correction.save(update_fields=["invoice", "updated_at"])
    # The late events' lineage: on the correction's fee, or handled (no fee) for a decrease.
    rows = []
    for entry in entries:
        if entry.tag not in late.count_by_tag:
            continue
        added = fee_for_tag.get(entry.tag)
        root = entry.root_id or (added.pk if added is not None else None)
        if root is None:
            continue  # a new line priced at zero: nothing to correct nor to attach its events to
        rows.append(lineage.Entry(entry.tag, added.pk if added else None, root, entry.scope))
    lineage.lineage_insert(rows, correction_id=correction.pk)
    InvoiceEvent.objects.create(
        invoice=original,
        kind="correction_proposed",
        actor=actor,
        payload={
            "correction_id": str(correction.pk),
            "invoice_id": str(correction.invoice_id) if correction.invoice_id else None,
            "credit_note_id": str(correction.credit_note_id) if correction.credit_note_id else None,
            "events_count": late.count,
            "decreases": decreases,
        },
    )
    return _Outcome("created", correction)


def _correction_fee(fee: Fee, line: _Line, delta: Decimal, *, events_count: int) -> Fee:
    """The difference on one line: the late units and events, (recomputed - invoiced) as amount,
    the original period's dates, the line it corrects and its taxes."""
    precise = fee.precise_amount - line.precise
    correction = Fee(
        subscription=fee.subscription,
        charge=fee.charge,
        charge_filter=fee.charge_filter,
        fee_type=FeeType.CHARGE,
        currency=fee.currency,
        units=fee.units - line.units,
        events_count=events_count,
        unit_amount=fee.unit_amount,
        amount=delta,
        precise_amount=precise if round_amount(precise, fee.currency) == delta else delta,
        amount_details={
            **(fee.amount_details or {}),
            "recomputed_amount": str(round_amount(fee.amount, fee.currency)),
            "invoiced_amount": str(line.amount),
            "recomputed_units": str(fee.units),
            "invoiced_units": str(line.units),
        },
        grouped_by=fee.grouped_by,
        pay_in_advance=False,
        from_datetime=fee.from_datetime,
        to_datetime=fee.to_datetime,
        invoice_display_name=f"{fee.invoice_display_name} (late usage)",
        corrected_fee=line.root,
    )
    if line.root is not None:
        # Taxes as on the original line (a tax deleted since is left out).
        correction.tax_override = [t.tax for t in line.root.applied_taxes.select_related("tax") if t.tax]  # type: ignore[attr-defined]
    return correction


def _correction_invoice(original: Invoice, *, organization: Organization, now: datetime) -> Invoice:
    customer = original.customer
    tz = customer.applicable_timezone(organization)
    issuing_date = now.astimezone(ZoneInfo(tz)).date()
    net_term = customer.applicable_net_payment_term(organization)
    return Invoice(
        customer=customer,
        invoice_type=InvoiceType.CORRECTION,
        corrected_invoice=original,
        status=InvoiceStatus.DRAFT,
        number=numbering.draft_number(organization),
        currency=original.currency,
        issuing_date=issuing_date,
        payment_due_date=issuing_date + timedelta(days=net_term),
        net_payment_term=net_term,
    )


def _draft_credit_note(original: Invoice, decreases: list[dict[str, Any]], *, actor: str) -> CreditNote:
    fees = {fee.pk: fee for fee in Fee.objects.filter(pk__in=[_uuid(d["fee_id"]) for d in decreases])}
    return credit_notes.credit_note_create(
        invoice=original,
        reason=CreditNoteReason.ORDER_CHANGE,
        items=[(fees.get(_uuid(d["fee_id"])), Decimal(d["amount"])) for d in decreases],
        description=DECREASE_DESCRIPTION,
        actor=actor,
        draft=True,
    )


def _supersede(draft: Correction) -> None:
    """A waiting draft is replaced by one covering every late event so far (events arriving while
    it waits refresh it): its lineage rows, its draft invoice and its draft credit note go, its
    audit row stays."""
    FeeEvent.objects.filter(correction=draft).delete()
    invoice, note = draft.invoice, draft.credit_note
    draft.status = CorrectionStatus.SUPERSEDED
    draft.invoice = None
    draft.credit_note = None
    draft.save(update_fields=["status", "invoice", "credit_note", "updated_at"])
    if invoice is not None and invoice.status == InvoiceStatus.DRAFT:
        invoice.delete()
    if note is not None:
        credit_notes.credit_note_draft_delete(credit_note=note)


# --- issuing and discarding -------------------------------------------------------------------


def correction_issue(*, correction: Correction, actor: str, now: datetime | None = None) -> Correction:
    """Issue a draft correction: its invoice finalized (the gapless number taken then), its
    decreases credited on the original."""
    from ..services import invoice_finalize

    with transaction.atomic():
        correction = Correction.objects.select_for_update().get(pk=correction.pk)
        if correction.status != CorrectionStatus.DRAFT:
            return correction
        if correction.invoice_id is not None:
            invoice_finalize(invoice=Invoice(pk=correction.invoice_id), actor=actor, now=now)
            correction.refresh_from_db()
        else:
            _issue_decreases(correction, actor=actor)
    return correction


def correction_invoice_finalized(*, invoice_id: Any) -> None:
    """A correction invoice was finalized (the run, the API's finalize or the console): its
    correction is issued, decreases included."""
    correction = Correction.objects.select_for_update().filter(invoice_id=invoice_id).first()
    if correction is not None and correction.status == CorrectionStatus.DRAFT:
        _issue_decreases(correction, actor="system:late_usage")


def _issue_decreases(correction: Correction, *, actor: str) -> None:
    """The correction is issued; its draft credit note finalized (numbered, its credit available)."""
    note = correction.credit_note
    if note is None and correction.decreases:
        # A draft proposed before decreases were drafted as credit notes: drafted now, then issued.
        note = _draft_credit_note(correction.original_invoice, correction.decreases, actor=actor)
        correction.credit_note = note
        correction.save(update_fields=["credit_note", "updated_at"])
    if note is not None and note.status == CreditNoteStatus.DRAFT:
        credit_notes.credit_note_finalize(credit_note=note, actor=actor)
    correction.status = CorrectionStatus.ISSUED
    correction.save(update_fields=["status", "updated_at"])


def correction_discard(*, correction: Correction, reason: str, actor: str) -> Correction:
    """Finance refuses a draft correction: its invoice goes, its events stay handled (never
    proposed again), with an audit row on the original invoice."""
    from ..errors import InvoicingError, NotAllowedError

    if not reason or not str(reason).strip():
        raise InvoicingError.field("reason", "value_is_mandatory")
    with transaction.atomic():
        correction = Correction.objects.select_for_update().get(pk=correction.pk)
        if correction.status != CorrectionStatus.DRAFT:
            raise NotAllowedError("is_not_draft")
        invoice, note = correction.invoice, correction.credit_note
        correction.status = CorrectionStatus.DISCARDED
        correction.discard_reason = str(reason).strip()
        correction.invoice = None
        correction.credit_note = None
        correction.save(update_fields=["status", "discard_reason", "invoice", "credit_note", "updated_at"])
        InvoiceEvent.objects.create(
            invoice_id=correction.original_invoice_id,
            kind="correction_discarded",
            actor=actor,
            payload={
                "correction_id": str(correction.pk),
                "invoice_id": str(invoice.pk) if invoice else None,
                "credit_note_id": str(note.pk) if note else None,
                "events_count": correction.events_count,
                "decreases": correction.decreases,
                "reason": correction.discard_reason,
            },
        )
        if invoice is not None:
            invoice.delete()  # its fees' lineage rows stay (fee set null): the events are handled
        if note is not None:
            credit_notes.credit_note_draft_delete(credit_note=note)
    return correction


# --- the run ----------------------------------------------------------------------------------


def late_usage_rerate(*, at: datetime | None = None, actor: str) -> RerateSummary:
    """Re-rate every finalized period of every marked subscription, oldest first, each in its
    own transaction. A mark goes only if no late batch arrived while the run worked on it."""
    at = at or timezone.now()
    summary = RerateSummary()
    organization = Organization.current()
    policy = organization.late_usage_policy
    marks = list(LateUsageMark.objects.order_by("external_subscription_id"))
    if policy == LateUsagePolicy.IGNORE:
        for mark in marks:
            LateUsageMark.objects.filter(pk=mark.pk, generation=mark.generation).delete()
        summary.ignored = len(marks)
        return summary
    window = timedelta(days=organization.late_usage_window_days)
    for mark in marks:
        periods = (
            InvoiceSubscription.objects.filter(
                subscription__external_id=mark.external_subscription_id,
                invoice__status=InvoiceStatus.FINALIZED,
                invoice__invoice_type=InvoiceType.SUBSCRIPTION,
                charges_from_datetime__isnull=False,
                charges_to_datetime__gt=mark.earliest_timestamp,
            )
            .exclude(invoicing_reason=InvoicingReason.IN_ADVANCE_CHARGE)
            .select_related("invoice__customer")
            .order_by("charges_from_datetime", "created_at")
        )
        failed = False
        for invoice_subscription in periods:
            if invoice_subscription.charges_to_datetime + window < at:  # type: ignore[operator]
                summary.too_late += 1
                continue
            try:
                outcome = period_rerate(
                    invoice_subscription=invoice_subscription,
                    policy=policy,
                    actor=actor,
                    now=at,
                    organization=organization,
                )
            except Exception:
                logger.exception("late usage: re-rating %s failed", invoice_subscription.pk)
                summary.failed += 1
                failed = True
                break  # later periods wait: recurring balances are re-rated oldest first
            if outcome.status == "created" and outcome.correction is not None:
                summary.correction_ids.append(outcome.correction.pk)
                if outcome.correction.invoice_id is not None:
                    summary.corrections += 1
                if outcome.correction.decreases:
                    summary.credit_notes += 1
            elif outcome.status == "skipped":
                summary.skipped += 1
            else:
                summary.unchanged += 1
        if not failed:
            LateUsageMark.objects.filter(pk=mark.pk, generation=mark.generation).delete()
    return summary
