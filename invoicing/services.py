"""Every state change of an invoice: created for a subscription-period, refreshed while draft,
finalized (number, frozen customer details, PDF and payment after commit), voided, its payment
status or metadata updated, and one-off invoices.

One transaction each; every change writes an InvoiceEvent with its actor. A finalized invoice's
amounts and fees are never written again (credit notes correct it, voiding cancels it), and
`total_paid_amount` belongs to payments: nothing here writes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from billing_project.after_commit import delay_after_commit, send_after_commit
from billing_project.bulk import Batch, insert_together
from billing_project.money import from_cents, round_amount, to_cents
from customers.locks import lock_customer
from customers.models import CUSTOMER_BILLING_FIELDS, ORGANIZATION_ISSUER_FIELDS, Customer, Organization
from customers.services import customer_currency_claim
from plans.models import AddOn, Subscription, Tax
from plans.selectors import default_taxes

from . import (
    billing,
    commitment,
    credit_notes,
    fixed_charges,
    locks,
    numbering,
    progressive,
    selectors,
    totals,
    windows,
)
from .corrections.recording import invoices_lineage_tail
from .errors import InvoicingError, NotAllowedError, NotFoundError
from .models import (
    Credit,
    Fee,
    FeeAppliedTax,
    FeeType,
    Invoice,
    InvoiceAppliedTax,
    InvoiceEvent,
    InvoiceStatus,
    InvoiceSubscription,
    InvoiceType,
    InvoicingReason,
    PaymentStatus,
)
from .signals import (
    invoice_drafted_in_tx,
    invoice_finalized,
    invoice_finalized_in_tx,
    invoice_one_off_created_in_tx,
    invoice_payment_status_changed_in_tx,
    invoice_voided_in_tx,
)
from .wallets import consumption as wallet_consumption

logger = logging.getLogger(__name__)

ZERO = Decimal(0)


class AlreadyBilled(Exception):
    """This subscription-period has its invoice already (the unique constraint said so)."""


def _event(invoice: Invoice, kind: str, actor: str, **payload: Any) -> InvoiceEvent:
    return InvoiceEvent(invoice=invoice, kind=kind, actor=actor, payload=payload)


def _totals_payload(invoice: Invoice) -> dict[str, str]:
    return {
        "fees_amount": str(round_amount(invoice.fees_amount, invoice.currency)),
        "taxes_amount": str(round_amount(invoice.taxes_amount, invoice.currency)),
        "total_amount": str(round_amount(invoice.total_amount, invoice.currency)),
    }


def _local_date(instant: datetime, tz: str) -> date:
    return instant.astimezone(ZoneInfo(tz or "UTC")).date()


# --------------------------------------------------------------------------------------------
# Subscription invoices


@dataclass
class RunContext:
    """What a billing run reads once for many invoices instead of once per invoice: the
    organization and its default taxes, and for a chunk of customers their taxes and whether
    they hold coupons or credit notes at all (customers without any skip those lookups)."""

    organization: Organization
    organization_taxes: list[Tax] | None = None
    customer_taxes: dict[Any, list[Tax]] | None = None
    customers_with_coupons: set[Any] | None = None
    customers_with_credit: set[Any] | None = None
    # Customers holding an active wallet when the chunk was read (the others skip the wallets'
    # locking read: one query per invoice less). None: every customer is looked up.
    customers_with_wallets: set[Any] | None = None
    # Those wallets, as read then (the amounts are computed from them and written by one guarded
    # statement: invoicing.wallets.consumption). None: each invoice locks and reads its wallets.
    customer_wallets: dict[Any, list[Any]] | None = None
    # For a chunk's plans and subscriptions (plans_read): each plan's fixed charges and minimum
    # commitment, and the periods with a progressive billing invoice to deduct. None: read per invoice.
    plan_fixed_charges: dict[Any, list[Any]] | None = None
    plan_commitments: dict[Any, Any] | None = None
    progressive_periods: set[tuple[str, datetime]] | None = None
    # The invoice numbers a batch of invoices in one transaction reserved up front (runs.BATCH);
    # set for that transaction only. None: each number is read when it is assigned.
    numbers: numbering.ReservedNumbers | None = None
    # That transaction's invoices' rows, inserted together (BatchWrites). None: each invoice's
    # rows are inserted when it is complete.
    writes: BatchWrites | None = None

    @classmethod
    def for_customers(cls, customer_ids: Sequence[Any], organization: Organization | None = None) -> RunContext:
        from plans.models import AppliedCoupon, CustomerTax

        from .models import CreditNote, CreditStatus
        from .wallets.consumption import SNAPSHOT_FIELDS
        from .wallets.models import Wallet, WalletStatus

        ids = list(set(customer_ids))
        customer_taxes: dict[Any, list[Tax]] = {}
        for row in CustomerTax.objects.filter(customer_id__in=ids).select_related("tax"):
            customer_taxes.setdefault(row.customer_id, []).append(row.tax)
        customer_wallets: dict[Any, list[Wallet]] = {}
        for wallet in Wallet.objects.filter(customer_id__in=ids, status=WalletStatus.ACTIVE).only(*SNAPSHOT_FIELDS):
            customer_wallets.setdefault(wallet.customer_id, []).append(wallet)
        return cls(
            organization=organization or Organization.current(),
            organization_taxes=list(Tax.objects.filter(applied_to_organization=True)),
            customer_taxes=customer_taxes,
            customers_with_coupons=set(
                AppliedCoupon.objects.filter(customer_id__in=ids, status="active").values_list("customer_id", flat=True)
            ),
            customers_with_credit=set(
                CreditNote.objects.filter(
                    customer_id__in=ids, credit_status=CreditStatus.AVAILABLE, balance_amount__gt=0
                ).values_list("customer_id", flat=True)
            ),
            customers_with_wallets=set(customer_wallets),
            customer_wallets=customer_wallets,
        )

    def plans_read(self, subscriptions: Sequence[Subscription]) -> RunContext:
        """The chunk's per-plan and per-period lookups, one query each (the subscriptions carry
        their plan: billing.with_billing_relations)."""
        plans = {subscription.plan_id: subscription.plan for subscription in subscriptions}.values()
        self.plan_fixed_charges = fixed_charges.plans_fixed_charges(plans)
        self.plan_commitments = commitment.plans_commitments(plans)
        self.progressive_periods = progressive.progressively_billed_periods(s.external_id for s in subscriptions)
        return self

    def tax_resolver(self, customer: Customer) -> totals.TaxResolver:
        fallback = None
        if self.customer_taxes is not None and self.organization_taxes is not None:
            fallback = default_taxes(
                customer_taxes=self.customer_taxes.get(customer.pk, []), organization_taxes=self.organization_taxes
            )
        return totals.TaxResolver(customer, fallback=fallback)


def invoice_create_for_period(
    *,
    subscription: Subscription,
    window: windows.BillingWindow,
    actor: str,
    usage: billing.DirectUsage | None = None,
    organization: Organization | None = None,
    context: RunContext | None = None,
    finalize: bool | None = None,
    now: datetime | None = None,
    batched: bool = False,
) -> Invoice:
    """The period run, one transaction, read top to bottom. A second run for the period raises
    AlreadyBilled at step 1, before any work. Without a grace period the invoice is finalized
    at once; with one it stays draft (steps 6-9 run when the draft is finalized).

    `batched`: inside a caller's transaction holding several invoices (runs.BATCH), no savepoint
    of its own (two statements less), and the period's claim joins the invoice's one insert (one
    statement less): a period billed already then raises AlreadyBilled at that insert, after the
    pricing, and anything raised here leaves the caller's transaction to be rolled back whole
    (the caller bills the batch again one invoice per transaction, where the claim comes first)."""
    context = context or RunContext(organization=organization or Organization.current())
    grace = subscription.customer.applicable_invoice_grace_period(context.organization)
    finalize = finalize if finalize is not None else grace == 0
    try:
        with transaction.atomic(savepoint=not batched):
            # 1. The window: the period is claimed (its unique InvoiceSubscription row; batched:
            # written with the invoice's insert).
            invoice, claim = _invoice_claim_row(
                subscription=subscription, window=window, context=context, grace_days=grace
            )
            if not batched:
                claim.save(force_insert=True)
            # 2-3. Usage aggregated in SQL, priced into fees: subscription fee, charges, minimums.
            fees = billing.subscription_fees(subscription, window, usage=usage)
            # 3a. Fixed charges (plans' add-ons with units), in advance or in arrears.
            fees.extend(
                fixed_charges.fixed_charge_fees(
                    subscription=subscription, window=window, by_plan=context.plan_fixed_charges
                )
            )
            # 3b. The minimum commitment's true-up, when the period's fees fall short of it.
            fees.extend(
                _commitment_fees(subscription=subscription, window=window, fees=fees, by_plan=context.plan_commitments)
            )
            # 3c. What the period's progressive billing invoices billed already, deducted.
            progressive.period_credit_apply(
                invoice=invoice,
                subscription=subscription,
                window=window,
                fees=fees,
                billed_periods=context.progressive_periods,
            )
            # 4-9. Coupons, taxes, credit notes, prepaid credits, totals, number (invoice_complete).
            invoice_complete(
                invoice=invoice,
                fees=fees,
                context=context,
                finalize=finalize,
                actor=actor,
                now=now,
                payload={"reason": window.reason},
                claim=claim if batched else None,
            )
            # A final period of a plan paid in advance credits the part of the fee not used.
            if window.reason in windows.FINAL_REASONS:
                if context.writes is not None:
                    context.writes.flush()  # it reads the subscription's invoices
                credit_notes.credit_note_create_for_unused_advance_fee(
                    subscription=subscription, upgraded=window.reason == InvoicingReason.UPGRADING, actor=actor
                )
    except IntegrityError as error:
        text = str(error)
        if "invoice_subscription_period_unique" in text or "invoicing_invoicesubscription.subscription_id" in text:
            raise AlreadyBilled(str(subscription.pk)) from None
        raise
    return invoice


def _commitment_fees(
    *, subscription: Subscription, window: windows.BillingWindow, fees: list[Fee], by_plan: Any = None
) -> list[Fee]:
    true_up = commitment.true_up_fee(subscription=subscription, window=window, fees=fees, by_plan=by_plan)
    return [true_up] if true_up is not None else []


def credit_note_for_skipped_final_invoice(*, subscription: Subscription, actor: str) -> None:
    """A termination with `on_termination_invoice: skip` bills no last period, yet credits the
    unused part of a fee paid in advance as `on_termination_credit_note` says (Lago's
    TerminateService issues that note whatever the invoice choice). Once per subscription."""
    with transaction.atomic():
        credit_notes.credit_note_create_for_unused_advance_fee(
            subscription=subscription, upgraded=False, actor=actor, once=True
        )


def _invoice_claim(
    *, subscription: Subscription, window: windows.BillingWindow, context: RunContext, grace_days: int
) -> Invoice:
    """A draft invoice (unsaved) for `window`, its period claimed by the InvoiceSubscription row
    whose unique constraint refuses a second invoice. Issued on the local date of the window's
    timestamp plus `grace_days`."""
    invoice, claim = _invoice_claim_row(
        subscription=subscription, window=window, context=context, grace_days=grace_days
    )
    claim.save(force_insert=True)
    return invoice


def _invoice_claim_row(
    *, subscription: Subscription, window: windows.BillingWindow, context: RunContext, grace_days: int
) -> tuple[Invoice, InvoiceSubscription]:
    """_invoice_claim's invoice and its claim, both unsaved."""
    assert transaction.get_connection().in_atomic_block, "an invoice is created inside its caller's transaction"
    organization = context.organization
    customer = subscription.customer
    net_term = customer.applicable_net_payment_term(organization)
    tz = customer.applicable_timezone(organization)
    issuing_date = _local_date(window.timestamp, tz) + timedelta(days=grace_days)
    invoice = Invoice(
        customer=customer,
        invoice_type=InvoiceType.SUBSCRIPTION,
        status=InvoiceStatus.DRAFT,
        number=numbering.draft_number(organization),
        currency=billing.plan_currency(subscription),
        issuing_date=issuing_date,
        payment_due_date=issuing_date + timedelta(days=net_term),
        net_payment_term=net_term,
    )
    # Foreign keys are checked at commit: the period is claimed before the invoice exists.
    claim = InvoiceSubscription(
        invoice_id=invoice.pk,
        subscription=subscription,
        invoicing_reason=window.reason,
        from_datetime=window.from_datetime,
        to_datetime=window.to_datetime,
        charges_from_datetime=window.charges_from_datetime,
        charges_to_datetime=window.charges_to_datetime,
        timestamp=window.timestamp,
    )
    return invoice, claim


def invoice_create_with_fees(
    *,
    subscription: Subscription,
    window: windows.BillingWindow,
    fees: Sequence[Fee],
    actor: str,
    context: RunContext,
    now: datetime | None = None,
    payload: Mapping[str, Any] | None = None,
) -> Invoice:
    """A finalized invoice of fees priced already (a pay-in-advance charge's event), inside the
    caller's transaction: the period claimed, then steps 4-9 of the period run."""
    invoice = _invoice_claim(subscription=subscription, window=window, context=context, grace_days=0)
    invoice_complete(
        invoice=invoice,
        fees=fees,
        context=context,
        finalize=True,
        actor=actor,
        now=now,
        payload={"reason": window.reason, **(payload or {})},
    )
    return invoice


def invoice_complete(
    *,
    invoice: Invoice,
    fees: Sequence[Fee],
    context: RunContext,
    finalize: bool,
    actor: str,
    now: datetime | None,
    payload: Mapping[str, Any],
    claim: InvoiceSubscription | None = None,
) -> None:
    """Steps 4-9 of the period run on a claimed invoice, built in memory and inserted once:
    coupons, taxes and subtotals; when `finalize`, the credit notes, the prepaid credits, the
    total, the number and the frozen details (payment and PDF after commit). `claim`: the
    period's claim not written yet (a batched run), inserted with the invoice."""
    customer = invoice.customer
    with_coupons = context.customers_with_coupons is None or customer.pk in context.customers_with_coupons
    with_credit = context.customers_with_credit is None or customer.pk in context.customers_with_credit
    with_wallets = context.customers_with_wallets is None or customer.pk in context.customers_with_wallets
    wallets = context.customer_wallets.get(customer.pk) if context.customer_wallets is not None else None
    for fee in fees:
        fee.invoice = invoice
    # The fees as the invoice's `fees` (prefetched): finalization steps read them before they are saved.
    invoice._prefetched_objects_cache = {"fees": list(fees)}  # type: ignore[attr-defined]
    # 4. Coupons.
    credits = totals.coupons_apply(invoice=invoice, fees=fees) if with_coupons else []
    # 5. Taxes (totals.TaxResolver: which taxes apply to each fee), then the subtotals.
    taxes = totals.taxes_compute(
        invoice=invoice, fees=fees, resolver=context.tax_resolver(customer), currency=invoice.currency
    )
    totals.invoice_amounts_set(invoice=invoice, fees=fees, credits=credits, taxes=taxes)
    events = [_event(invoice, "created", actor, **payload, **_totals_payload(invoice))]
    if finalize:
        _finalize_steps(
            invoice,
            organization=context.organization,
            now=now,
            with_credit=with_credit,
            with_wallets=with_wallets,
            wallets=wallets,
            numbers=context.numbers,
        )
        events.append(_event(invoice, "finalized", actor, number=invoice.number, **_totals_payload(invoice)))
        _after_commit(invoice)
    # The invoice, its fees, taxes, credits and events: one statement (billing_project.bulk).
    rows: list[Batch] = [
        (InvoiceSubscription, [claim] if claim is not None else []),
        (Invoice, [invoice]),
        (Fee, list(fees)),
        (FeeAppliedTax, taxes.fee_taxes),
        (InvoiceAppliedTax, taxes.invoice_taxes),
        (Credit, credits),
        (InvoiceEvent, events),
    ]
    written = _Written(invoice=invoice, fees=fees, finalize=finalize)
    if context.writes is not None:
        # A batch of the run: its invoices' rows go in together (BatchWrites.flush).
        context.writes.add(rows, written)
        return
    _insert_and_announce(rows, [written], organization=context.organization)


@dataclass(frozen=True)
class _Written:
    """An invoice built in memory, its rows about to be inserted."""

    invoice: Invoice
    fees: Sequence[Fee]
    finalize: bool


def _insert_and_announce(rows: Sequence[Batch], invoices: Sequence[_Written], *, organization: Organization) -> None:
    """Insert the invoices' rows (one statement), then announce each invoice, in order."""
    # A finalized subscription invoice's lineage (the events its charge fees counted) joins the
    # insert: after the usage's aggregation, as invoice_lineage_write wants it, no statement more.
    pending = invoices_lineage_tail(
        [
            (written.invoice.pk, written.fees)
            for written in invoices
            if written.finalize and written.invoice.invoice_type == InvoiceType.SUBSCRIPTION
        ]
    )
    insert_together(rows, tail=pending.tail if pending is not None else None)
    lineage_written = pending.invoice_ids if pending is not None else set()
    if pending is not None:
        pending.check()
    for written in invoices:
        invoice = written.invoice
        # Saved now: `invoice.fees` is a queryset again (the list above answers no .get() or .filter()).
        invoice._prefetched_objects_cache.pop("fees", None)  # type: ignore[attr-defined]
        # Inside the transaction, the rows saved: the webhook outbox row commits with the invoice.
        # In memory for the receivers (no read back): `fees` (relations loaded; the lineage's when
        # not written above), the invoice (its customer loaded: the e-mail's) and the organization.
        (invoice_finalized_in_tx if written.finalize else invoice_drafted_in_tx).send(
            sender=Invoice,
            invoice_id=invoice.pk,
            fees=written.fees,
            invoice=invoice,
            organization=organization,
            lineage_written=invoice.pk in lineage_written,
        )


class BatchWrites:
    """The rows of a batch of the run's invoices (runs.BATCH in one transaction), inserted by
    `flush()` in ONE statement: every invoice's claim, invoice, fees, taxes, credits and events,
    one array per column, and one lineage statement part for all their fees. The statement's
    parse and plan, and the client's quoting of each parameter, are paid once per batch.

    What reads the rows runs after that statement, in the invoices' order, in the same
    transaction: the lineage's check and the receivers of invoice_finalized_in_tx /
    invoice_drafted_in_tx (a webhook payload reads its invoice). Nothing an invoice computes
    reads another customer's invoices, so the batch is flushed before a customer's second invoice
    (`holds`), and before a final period's credit note for a fee paid in advance (it reads the
    subscription's invoices)."""

    def __init__(self, organization: Organization) -> None:
        self.organization = organization
        self.rows: dict[type[models.Model], list[models.Model]] = {}
        self.invoices: list[_Written] = []
        self.customers: set[Any] = set()

    def holds(self, customer_id: Any) -> bool:
        return customer_id in self.customers

    def add(self, rows: Sequence[Batch], written: _Written) -> None:
        for model, objs in rows:
            self.rows.setdefault(model, []).extend(objs)
        self.invoices.append(written)
        self.customers.add(written.invoice.customer_id)

    def flush(self) -> None:
        if not self.invoices:
            return
        rows, invoices = list(self.rows.items()), self.invoices
        self.rows, self.invoices, self.customers = {}, [], set()
        _insert_and_announce(rows, invoices, organization=self.organization)


_AMOUNT_FIELDS = [
    "fees_amount",
    "coupons_amount",
    "progressive_billing_credit_amount",
    "sub_total_excluding_taxes_amount",
    "taxes_amount",
    "sub_total_including_taxes_amount",
    "credit_notes_amount",
    "prepaid_credit_amount",
    "total_amount",
    "updated_at",
]


def window_of(subscription: Subscription, invoice_subscription: InvoiceSubscription) -> windows.BillingWindow:
    """The window an invoice was created for, computed again from its reason and timestamp (the
    period functions are pure, so the same inputs give the same periods)."""
    reason = invoice_subscription.invoicing_reason
    if reason == InvoicingReason.SUBSCRIPTION_STARTING:
        return windows.starting_window(subscription)
    window = windows.window_for(subscription, reason, invoice_subscription.timestamp)
    assert window is not None, f"no window for {reason}"
    return window


def _lock(invoice: Invoice | Any) -> Invoice:
    return locks.lock_invoice(invoice)


def _recompute(invoice: Invoice) -> None:
    """Compute a draft's fees again from its subscription-periods (late events, changed
    coupons); the previous fees, taxes and coupon credits are removed first."""
    totals.coupons_restore(invoice=invoice)
    invoice.fees.all().delete()
    InvoiceAppliedTax.objects.filter(invoice=invoice).delete()
    Credit.objects.filter(invoice=invoice).delete()
    fees: list[Fee] = []
    credit = Decimal(0)
    for invoice_subscription in invoice.invoice_subscriptions.all():
        subscription = billing.with_billing_relations(
            Subscription.objects.filter(pk=invoice_subscription.subscription_id)
        ).get()
        window = window_of(subscription, invoice_subscription)
        window_fees = billing.subscription_fees(subscription, window)
        window_fees.extend(fixed_charges.fixed_charge_fees(subscription=subscription, window=window))
        window_fees.extend(_commitment_fees(subscription=subscription, window=window, fees=window_fees))
        credit += progressive.period_credit_apply(
            invoice=invoice, subscription=subscription, window=window, fees=window_fees
        )
        fees.extend(window_fees)
    invoice.progressive_billing_credit_amount = credit
    totals.invoice_fees_save(invoice=invoice, fees=fees)


def _fees_snapshot(invoice: Invoice) -> list[tuple[Any, ...]]:
    return list(invoice.fees.order_by("created_at", "id").values_list("charge_id", "charge_filter_id", "fee_type"))


@transaction.atomic
def invoice_refresh(*, invoice: Invoice, actor: str) -> Invoice:
    """Compute a draft again (Lago's refresh); any other status is left as it is."""
    invoice = _lock(invoice)
    if invoice.status != InvoiceStatus.DRAFT or invoice.invoice_type != InvoiceType.SUBSCRIPTION:
        return invoice
    before = _totals_payload(invoice)
    _recompute(invoice)
    invoice.save(update_fields=_AMOUNT_FIELDS)
    InvoiceEvent.objects.create(
        invoice=invoice, kind="refreshed", actor=actor, payload={"before": before, "after": _totals_payload(invoice)}
    )
    return invoice


def customer_snapshot(customer: Customer, organization: Organization) -> dict[str, Any]:
    """The billing details an issued invoice keeps, whatever happens to the customer later."""
    customer_fields = ("external_id", *CUSTOMER_BILLING_FIELDS)
    organization_fields = ORGANIZATION_ISSUER_FIELDS
    snapshot_customer: dict[str, Any] = {name: getattr(customer, name) for name in customer_fields}
    snapshot_customer["sequential_id"] = customer.sequential_id
    snapshot_customer["metadata"] = [
        row for row in (customer.metadata or []) if isinstance(row, Mapping) and row.get("display_in_invoice")
    ]
    return {
        "customer": snapshot_customer,
        "organization": {name: getattr(organization, name) for name in organization_fields},
    }


_FINALIZED_FIELDS = [
    *_AMOUNT_FIELDS,
    "issuing_date",
    "payment_due_date",
    "number",
    "sequential_id",
    "organization_sequential_id",
    "customer_snapshot",
    "status",
    "finalized_at",
    "payment_status",
]


def _finalize_fields(
    invoice: Invoice, *, organization: Organization, now: datetime | None, with_credit: bool = True
) -> None:
    """A draft's finalization: steps 6-9 of the period run (`_finalize_steps`)."""
    _finalize_steps(invoice, organization=organization, now=now, with_credit=with_credit)


def _finalize_steps(
    invoice: Invoice,
    *,
    organization: Organization,
    now: datetime | None,
    with_credit: bool,
    with_wallets: bool = True,
    wallets: list[Any] | None = None,
    numbers: numbering.ReservedNumbers | None = None,
) -> None:
    """Steps 6-9, in memory except what they consume: credit notes (their rows locked) and the
    gapless number (its sequence row locked until commit)."""
    now = now or timezone.now()
    _issuing_date_set(invoice, organization=organization, now=now)
    # 6. Credit notes' available credit.
    invoice.credit_notes_amount = _credit_notes_credit(invoice, with_credit=with_credit)
    # 7. Prepaid credits (wallets).
    invoice.prepaid_credit_amount = _prepaid_credits_credit(invoice, wallets) if with_wallets else ZERO
    # 8. The total.
    invoice.total_amount = (
        invoice.sub_total_including_taxes_amount - invoice.credit_notes_amount - invoice.prepaid_credit_amount
    )
    # 9. The number, the frozen customer and issuer details, the status.
    numbering.invoice_number_assign(
        invoice=invoice, organization=organization, issuing_date=invoice.issuing_date, reserved=numbers
    )
    invoice.customer_snapshot = customer_snapshot(invoice.customer, organization)
    invoice.status = InvoiceStatus.FINALIZED
    invoice.finalized_at = now
    if invoice.total_amount <= 0:
        invoice.payment_status = PaymentStatus.SUCCEEDED


def _issuing_date_set(invoice: Invoice, *, organization: Organization, now: datetime) -> None:
    """Finalized early by hand: issued today; at or after the end of its grace: as planned."""
    today = now.astimezone(ZoneInfo(invoice.customer.applicable_timezone(organization))).date()
    invoice.issuing_date = min(invoice.issuing_date, today)
    invoice.payment_due_date = invoice.issuing_date + timedelta(days=invoice.net_payment_term)


def _credit_notes_credit(invoice: Invoice, *, with_credit: bool) -> Decimal:
    """What the customer's credit notes pay of the invoice (their balances consumed)."""
    due = invoice.sub_total_including_taxes_amount
    if not with_credit or due <= 0:
        return ZERO
    return credit_notes.credit_notes_apply(invoice=invoice, amount=due) or ZERO


def _prepaid_credits_credit(invoice: Invoice, wallets: list[Any] | None = None) -> Decimal:
    """What prepaid credits (wallets) pay of the invoice after credit notes (invoicing.wallets,
    its wallet rows locked; `wallets`: the run's chunk read of the customer's wallets)."""
    return wallet_consumption.invoice_apply_prepaid_credits(invoice=invoice, snapshot=wallets)


def _after_commit(invoice: Invoice) -> None:
    """Once the finalization committed: payments and webhooks (invoice_finalized), then the PDF;
    two callbacks, so a failing renderer never keeps the invoice from being collected."""
    from .tasks import render_invoice_pdf

    send_after_commit(invoice_finalized, sender=Invoice, invoice_id=invoice.pk)
    delay_after_commit(render_invoice_pdf, str(invoice.pk))


def _finalize_locked(
    invoice: Invoice, *, organization: Organization, actor: str, now: datetime | None, refresh: bool = True
) -> None:
    """Finalize a locked, saved draft: recompute it (subscription drafts), then finalize it."""
    if refresh and invoice.invoice_type == InvoiceType.SUBSCRIPTION:
        _recompute(invoice)
    _finalize_fields(invoice, organization=organization, now=now)
    invoice.save(update_fields=_FINALIZED_FIELDS)
    InvoiceEvent.objects.create(
        invoice=invoice, kind="finalized", actor=actor, payload={"number": invoice.number, **_totals_payload(invoice)}
    )
    # Lago announces a one-off invoice as invoice.one_off_created, every other as invoice.created.
    one_off = invoice.invoice_type == InvoiceType.ONE_OFF
    (invoice_one_off_created_in_tx if one_off else invoice_finalized_in_tx).send(sender=Invoice, invoice_id=invoice.pk)
    _after_commit(invoice)


@transaction.atomic
def invoice_finalize(*, invoice: Invoice, actor: str, now: datetime | None = None) -> Invoice:
    """Finalize a draft (Lago's PUT /invoices/{id}/finalize). Finalizing a finalized invoice
    again changes nothing; a voided one cannot be."""
    invoice = _lock(invoice)
    if invoice.status == InvoiceStatus.FINALIZED:
        return invoice
    if invoice.status != InvoiceStatus.DRAFT:
        raise NotAllowedError("is_not_draft")
    _finalize_locked(invoice, organization=Organization.current(), actor=actor, now=now)
    return invoice


@transaction.atomic
def invoice_void(*, invoice: Invoice, actor: str, now: datetime | None = None) -> Invoice:
    """Lago's POST /invoices/{id}/void: only a finalized invoice that is not paid."""
    invoice = _lock(invoice)
    if (
        invoice.status != InvoiceStatus.FINALIZED
        or invoice.payment_status == PaymentStatus.SUCCEEDED
        # As Lago's voidable?: an invoice whose disputed payment was lost stays as it is.
        or invoice.payment_dispute_lost_at is not None
    ):
        raise NotAllowedError("not_voidable")
    invoice.status = InvoiceStatus.VOIDED
    invoice.voided_at = now or timezone.now()
    invoice.save(update_fields=["status", "voided_at", "updated_at"])
    # The customer never paid with the credit this invoice consumed: it goes back to its notes.
    recredited = credit_notes.credit_notes_recredit(invoice=invoice, actor=actor)
    wallet_consumption.invoice_recredit_prepaid_credits(invoice=invoice)
    InvoiceEvent.objects.create(
        invoice=invoice,
        kind="voided",
        actor=actor,
        payload={"number": invoice.number, "recredited_amount_cents": to_cents(recredited, invoice.currency)},
    )
    invoice_voided_in_tx.send(sender=Invoice, invoice_id=invoice.pk)
    return invoice


_UNSET: Any = object()


def _clean_metadata(metadata: Any) -> list[dict[str, Any]]:
    if not isinstance(metadata, list):
        raise InvoicingError.field("metadata", "invalid_type")
    cleaned = []
    for row in metadata:
        if not isinstance(row, Mapping) or not isinstance(row.get("key"), str) or not row.get("key"):
            raise InvoicingError.field("metadata", "invalid_key")
        value = row.get("value")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvoicingError.field("metadata", "invalid_value")
        entry = {"key": row["key"], "value": "" if value is None else str(value)}
        if row.get("id"):
            entry["id"] = str(row["id"])
        cleaned.append(entry)
    return cleaned


@transaction.atomic
def invoice_update(
    *, invoice: Invoice, actor: str, payment_status: str | None = None, metadata: Any = _UNSET
) -> Invoice:
    """Lago's PUT /invoices/{id}: the payment status and the metadata, nothing else."""
    invoice = _lock(invoice)
    fields = ["updated_at"]
    payload: dict[str, Any] = {}
    if payment_status is not None:
        if payment_status not in PaymentStatus.values:
            raise InvoicingError.field("payment_status", "value_is_invalid")
        payable = invoice.status == InvoiceStatus.FINALIZED or (
            invoice.status == InvoiceStatus.OPEN and invoice.invoice_type == InvoiceType.CREDIT
        )
        if not payable:
            raise NotAllowedError("invoice_not_finalized")
        if payment_status != invoice.payment_status:
            payload["payment_status"] = [invoice.payment_status, payment_status]
            invoice.payment_status = payment_status
            fields.append("payment_status")
            if payment_status == PaymentStatus.SUCCEEDED:
                wallet_consumption.invoice_paid_settle_credits(invoice=invoice)
            elif payment_status == PaymentStatus.FAILED:
                wallet_consumption.invoice_payment_failed_mark_credits(invoice=invoice)
    if metadata is not _UNSET and metadata is not None:
        cleaned = _clean_metadata(metadata)
        payload["metadata"] = cleaned
        invoice.metadata = cleaned
        fields.append("metadata")
    if len(fields) > 1:
        invoice.save(update_fields=fields)
        InvoiceEvent.objects.create(invoice=invoice, kind="updated", actor=actor, payload=payload)
        if "payment_status" in payload:
            invoice_payment_status_changed_in_tx.send(sender=Invoice, invoice_id=invoice.pk)
    return invoice


def _decimal(value: Any, field: str, *, default: Decimal | None = None) -> Decimal:
    if value is None:
        if default is None:
            raise InvoicingError.field(field, "value_is_mandatory")
        return default
    if isinstance(value, bool):
        raise InvoicingError.field(field, "invalid_value")
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvoicingError.field(field, "invalid_value") from None
    if not number.is_finite() or number < 0 or number > Decimal("1e14"):
        raise InvoicingError.field(field, "invalid_value")
    return number


def _aware(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvoicingError.field("from_datetime", "invalid_date") from None
        return parsed if parsed.tzinfo is not None else None
    return None


@transaction.atomic
def invoice_create_one_off(
    *,
    customer: Customer,
    currency: str | None,
    fees: Sequence[Mapping[str, Any]],
    actor: str,
    now: datetime | None = None,
) -> Invoice:
    """Lago's POST /invoices: a finalized one-off invoice of add-ons (units x unit amount, the
    add-on's price and description by default), taxed with the add-ons' taxes."""
    from billing_project.money import is_currency

    now = now or timezone.now()
    organization = Organization.current()
    customer = lock_customer(customer)
    currency = currency or customer.currency or organization.default_currency
    if not is_currency(currency):
        raise InvoicingError.field("currency", "value_is_invalid")
    if customer.currency and customer.currency != currency:
        raise InvoicingError(None, "currencies_does_not_match")  # before any other check, as Lago
    if not isinstance(fees, Sequence) or isinstance(fees, str | bytes) or not fees:
        raise InvoicingError.field("fees", "no_fees")
    rows = []
    codes = []
    for row in fees:
        if not isinstance(row, Mapping):
            raise InvoicingError.field("fees", "invalid_type")
        add_on = row.get("add_on")
        codes.append(add_on.code if isinstance(add_on, AddOn) else str(row.get("add_on_code") or ""))
        rows.append(row)
    add_ons = {a.code: a for a in AddOn.live.filter(code__in=codes).prefetch_related("taxes")}
    tax_codes = {str(code) for row in rows for code in (row.get("tax_codes") or [])}
    taxes_by_code = {tax.code: tax for tax in Tax.objects.filter(code__in=tax_codes)} if tax_codes else {}
    if tax_codes - set(taxes_by_code):
        raise NotFoundError("tax")
    if not customer_currency_claim(customer=customer, currency=currency):
        raise InvoicingError(None, "currencies_does_not_match")
    issuing_date = now.astimezone(ZoneInfo(customer.applicable_timezone(organization))).date()
    net_term = customer.applicable_net_payment_term(organization)
    invoice = Invoice.objects.create(
        customer=customer,
        invoice_type=InvoiceType.ONE_OFF,
        status=InvoiceStatus.DRAFT,
        number=numbering.draft_number(organization),
        currency=currency,
        issuing_date=issuing_date,
        payment_due_date=issuing_date + timedelta(days=net_term),
        net_payment_term=net_term,
    )
    fee_rows = []
    for row, code in zip(rows, codes, strict=True):
        add_on = add_ons.get(code)
        if add_on is None:
            raise NotFoundError("add_on")
        units = _decimal(row.get("units"), "units", default=Decimal(1))
        if row.get("unit_amount_cents") is not None:
            unit_amount = from_cents(_decimal(row.get("unit_amount_cents"), "unit_amount_cents"), currency)
        else:
            unit_amount = add_on.amount.amount
        precise = units * unit_amount
        fee = Fee(
            invoice=invoice,
            add_on=add_on,
            fee_type=FeeType.ADD_ON,
            currency=currency,
            units=units,
            unit_amount=unit_amount,
            precise_amount=precise,
            amount=round_amount(precise, currency),
            invoice_display_name=str(row.get("invoice_display_name") or add_on.invoice_display_name or add_on.name),
            description=str(row.get("description") or add_on.description or ""),
            from_datetime=_aware(row.get("from_datetime")) or now,
            to_datetime=_aware(row.get("to_datetime")) or now,
        )
        if row.get("tax_codes") is not None:
            # Lago: a one-off fee's tax_codes replace the add-on's taxes. The ignore: tax_override is
            # an unsaved attribute (not a field) that totals.TaxResolver.for_fee reads.
            fee.tax_override = [taxes_by_code[str(code)] for code in row["tax_codes"]]  # type: ignore[attr-defined]
        fee_rows.append(fee)
    totals.invoice_fees_save(invoice=invoice, fees=fee_rows, with_coupons=False)
    invoice.save(update_fields=_AMOUNT_FIELDS)
    InvoiceEvent.objects.create(invoice=invoice, kind="created", actor=actor, payload=_totals_payload(invoice))
    _finalize_locked(invoice, organization=organization, actor=actor, now=now, refresh=False)
    return invoice


# --------------------------------------------------------------------------------------------
# Drafts


def invoices_finalize_due(*, now: datetime | None = None, actor: str = "system:grace_period") -> dict[str, int]:
    """Hourly: refresh drafts that received late events, then finalize those past their grace."""
    now = now or timezone.now()
    counts = {"refreshed": 0, "finalized": 0, "failed": 0}
    for invoice_id in selectors.drafts_with_late_events():
        try:
            invoice_refresh(invoice=Invoice(pk=invoice_id), actor=actor)
            counts["refreshed"] += 1
        except Exception:
            logger.exception("invoicing: refresh of draft %s failed", invoice_id)
            counts["failed"] += 1
    for invoice_id in selectors.drafts_due(now=now):
        try:
            invoice_finalize(invoice=Invoice(pk=invoice_id), actor=actor, now=now)
            counts["finalized"] += 1
        except Exception:
            logger.exception("invoicing: finalization of draft %s failed", invoice_id)
            counts["failed"] += 1
    return counts
