"""What they owe: invoices and what hangs off them.

Amounts are Decimal in major units of `currency`, rounded to the currency's minor unit
(billing_project.money); the API speaks integer `*_amount_cents`.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django.db.models import Q
from djmoney.money import Money

from billing_project.fields import amount_field, precise_field, rate_field, units_field
from customers.models import Customer
from plans.models import AddOn, AppliedCoupon, Charge, ChargeFilter, Subscription, Tax


class InvoiceType(models.TextChoices):
    SUBSCRIPTION = "subscription", "Subscription"
    ADD_ON = "add_on", "Add-on"
    ONE_OFF = "one_off", "One-off"
    CREDIT = "credit", "Credit"
    # Late usage for a finalized period (invoicing.corrections): never an edit of the original.
    CORRECTION = "correction", "Correction"
    # Mid-period: the usage so far, when lifetime usage crossed a usage threshold.
    PROGRESSIVE_BILLING = "progressive_billing", "Progressive billing"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    FINALIZED = "finalized", "Finalized"
    VOIDED = "voided", "Voided"
    FAILED = "failed", "Failed"
    # A draft deleted through the API (Lago's invisible `deleted` status): the row and its
    # InvoiceSubscription stay, so the period is never billed again; the API no longer shows it.
    DELETED = "deleted", "Deleted"
    # A credit invoice of a wallet top-up with invoice_requires_successful_payment (Lago's
    # `open`): collected like a finalized one, numbered and finalized only once it is paid.
    OPEN = "open", "Open (awaiting payment)"


# What can be collected: finalized invoices, and open credit invoices.
PAYABLE_STATUSES = (InvoiceStatus.FINALIZED, InvoiceStatus.OPEN)


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Invoice(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    # Assigned at finalization; "<PREFIX>-DRAFT" while draft.
    number = models.CharField(max_length=64, blank=True)
    sequential_id = models.PositiveIntegerField(null=True, blank=True)
    organization_sequential_id = models.PositiveIntegerField(null=True, blank=True)
    invoice_type = models.CharField(max_length=32, choices=InvoiceType.choices, default=InvoiceType.SUBSCRIPTION)
    status = models.CharField(max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT)
    payment_status = models.CharField(max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    payment_overdue = models.BooleanField(default=False)
    currency = models.CharField(max_length=3)
    issuing_date = models.DateField()
    payment_due_date = models.DateField()
    net_payment_term = models.PositiveIntegerField(default=0)
    version_number = models.PositiveSmallIntegerField(default=4)
    # A correction invoice's original (late usage for its period, invoicing.corrections).
    corrected_invoice = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="correction_invoices"
    )

    fees_amount = amount_field()
    coupons_amount = amount_field()
    sub_total_excluding_taxes_amount = amount_field()
    taxes_amount = amount_field()
    sub_total_including_taxes_amount = amount_field()
    credit_notes_amount = amount_field()
    prepaid_credit_amount = amount_field()
    # What progressive billing invoices of the period billed already (before taxes, like a coupon).
    progressive_billing_credit_amount = amount_field()
    total_amount = amount_field()
    # What payments received so far (written by payments only, never by invoicing or edits);
    # total_due_amount is total_amount minus this.
    total_paid_amount = amount_field()

    # The customer's billing details as they were at finalization (never updated afterwards).
    customer_snapshot = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=list, blank=True)
    file = models.FileField(upload_to="invoices/", blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    # Lago's lose_dispute: the customer's bank took a card payment back (a lost chargeback).
    payment_dispute_lost_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-issuing_date", "-created_at"]
        indexes = [
            models.Index(fields=["status", "payment_status"]),
            models.Index(fields=["customer", "issuing_date"]),
            # The console's dashboard and aging: what is still owed, read from the index alone
            # (a small part of all invoices once a ledger has a history).
            models.Index(
                fields=["currency", "payment_due_date"],
                include=["customer", "total_amount", "total_paid_amount", "payment_overdue"],
                condition=Q(status="finalized") & ~Q(payment_status="succeeded"),
                name="invoice_outstanding_idx",
            ),
            # Receivables aging, one page of customers at a time: whether a customer owes
            # anything, and what, by currency and due date, from the index alone.
            models.Index(
                fields=["customer", "currency", "payment_due_date"],
                include=["total_amount", "total_paid_amount"],
                condition=Q(status="finalized") & ~Q(payment_status="succeeded"),
                name="invoice_customer_due_idx",
            ),
            # Invoiced per month and currency (dashboard, gross revenue, MRR's invoices).
            models.Index(
                fields=["status", "issuing_date"],
                include=["currency", "total_amount"],
                name="invoice_issued_idx",
            ),
        ]
        constraints = [
            # Numbers exist from finalization on and are never reused (drafts share "<PREFIX>-DRAFT").
            models.UniqueConstraint(
                fields=["number"], condition=Q(finalized_at__isnull=False), name="invoice_number_unique"
            ),
            models.UniqueConstraint(fields=["customer", "sequential_id"], name="invoice_customer_sequence_unique"),
            models.CheckConstraint(condition=Q(total_paid_amount__gte=0), name="invoice_total_paid_not_negative"),
        ]

    def __str__(self) -> str:
        return self.number or str(self.id)

    @property
    def total_due_amount(self) -> Decimal:
        """Nothing is due on a draft or voided invoice; never negative."""
        if self.status not in PAYABLE_STATUSES:
            return Decimal(0)
        return max(self.total_amount - self.total_paid_amount, Decimal(0))

    def as_money(self, field: str) -> Money:
        return Money(getattr(self, field), self.currency)


class InvoicingReason(models.TextChoices):
    SUBSCRIPTION_STARTING = "subscription_starting", "Subscription starting"
    SUBSCRIPTION_PERIODIC = "subscription_periodic", "Subscription periodic"
    SUBSCRIPTION_TERMINATING = "subscription_terminating", "Subscription terminating"
    UPGRADING = "upgrading", "Upgrading"
    # An invoice issued when an event of a pay-in-advance charge arrives (many per period).
    IN_ADVANCE_CHARGE = "in_advance_charge", "In advance charge"
    # A progressive billing invoice (many per period: each usage threshold crossed; the
    # AppliedUsageThreshold rows, unique, make that once per threshold level).
    PROGRESSIVE_BILLING = "progressive_billing", "Progressive billing"


class InvoiceSubscription(models.Model):
    """Which subscription-period an invoice bills. The unique constraint (not a check in code) is
    what makes a second billing run for the same period a no-op."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="invoice_subscriptions")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="invoice_subscriptions")
    invoicing_reason = models.CharField(max_length=32, choices=InvoicingReason.choices)
    # The subscription fee's period.
    from_datetime = models.DateTimeField()
    to_datetime = models.DateTimeField()
    # The usage (charges) period billed on the same invoice (in arrears).
    charges_from_datetime = models.DateTimeField(null=True, blank=True)
    charges_to_datetime = models.DateTimeField(null=True, blank=True)
    # The instant the run billed at (the period boundary it was due at).
    timestamp = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One invoice per period, except for pay-in-advance charges: each event has its own
            # invoice (the fee's unique event key, not this row, makes that one per event).
            models.UniqueConstraint(
                fields=["subscription", "from_datetime", "to_datetime", "invoicing_reason"],
                condition=~Q(invoicing_reason__in=["in_advance_charge", "progressive_billing"]),
                name="invoice_subscription_period_unique",
            )
        ]
        indexes = [models.Index(fields=["subscription", "timestamp"])]

    def __str__(self) -> str:
        return f"{self.subscription_id} {self.from_datetime:%Y-%m-%d}..{self.to_datetime:%Y-%m-%d}"


class FeePaymentStatus(models.TextChoices):
    """A fee without an invoice is paid outside Tollgate (Lago's fee payment_status)."""

    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REFUNDED = "refunded", "Refunded"


class FeeType(models.TextChoices):
    SUBSCRIPTION = "subscription", "Subscription"
    CHARGE = "charge", "Charge"
    ADD_ON = "add_on", "Add-on"
    CREDIT = "credit", "Credit"
    COMMITMENT = "commitment", "Commitment"
    FIXED_CHARGE = "fixed_charge", "Fixed charge"


class Fee(models.Model):
    """One line of an invoice. `amount` is rounded once to the currency's minor unit;
    `precise_amount` keeps the charge model's unrounded figure. A fee of a pay-in-advance charge
    that is not invoiceable has no invoice (Lago records it for the integrating product to bill)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, null=True, blank=True, related_name="fees")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, null=True, blank=True, related_name="fees")
    charge = models.ForeignKey(Charge, on_delete=models.PROTECT, null=True, blank=True, related_name="fees")
    charge_filter = models.ForeignKey(
        ChargeFilter, on_delete=models.PROTECT, null=True, blank=True, related_name="fees"
    )
    add_on = models.ForeignKey(AddOn, on_delete=models.PROTECT, null=True, blank=True, related_name="fees")
    fixed_charge = models.ForeignKey(
        "plans.FixedCharge", on_delete=models.PROTECT, null=True, blank=True, related_name="fees"
    )
    fee_type = models.CharField(max_length=16, choices=FeeType.choices)
    currency = models.CharField(max_length=3)
    units = units_field()
    events_count = models.BigIntegerField(default=0)
    unit_amount = precise_field()
    amount = amount_field()
    precise_amount = precise_field()
    # This fee's share of the invoice's coupons (the tax base is amount - coupons share).
    precise_coupons_amount = precise_field()
    taxes_amount = amount_field()
    taxes_precise_amount = precise_field()
    taxes_rate = rate_field()
    # Tier breakdown, free units, per-event fees: the charge model's details.
    amount_details = models.JSONField(default=dict, blank=True)
    grouped_by = models.JSONField(default=dict, blank=True)
    pay_in_advance = models.BooleanField(default=False)
    # The event a pay-in-advance charge fee prices (events are unique per external subscription
    # and transaction id): with the charge and subscription, unique, so a retried task never
    # bills an event twice.
    pay_in_advance_event_id = models.BigIntegerField(null=True, blank=True)
    pay_in_advance_event_transaction_id = models.CharField(max_length=255, null=True, blank=True)
    from_datetime = models.DateTimeField(null=True, blank=True)
    to_datetime = models.DateTimeField(null=True, blank=True)
    invoice_display_name = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    # Only for a fee without an invoice (an invoiced fee's status is its invoice's), set by
    # PUT /fees/{id} as Lago; the *_at of the current status alone is kept.
    payment_status = models.CharField(max_length=16, choices=FeePaymentStatus.choices, default=FeePaymentStatus.PENDING)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)
    # DELETE /fees/{id} (a fee without an invoice only): hidden, kept (its unique event key stays
    # taken, so the event is never priced again).
    deleted_at = models.DateTimeField(null=True, blank=True)
    # A correction invoice's fee: the original invoice's line it corrects.
    corrected_fee = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="correction_fees"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["subscription", "charge"])]
        constraints = [
            models.UniqueConstraint(
                fields=["charge", "subscription", "pay_in_advance_event_transaction_id"],
                condition=Q(pay_in_advance_event_transaction_id__isnull=False),
                name="fee_pay_in_advance_event_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.fee_type} {self.amount} {self.currency}"


class InvoiceAppliedTax(models.Model):
    """One tax rate on an invoice: rounded once, on the sum of the fees (net of coupons) it applies to."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="applied_taxes")
    tax = models.ForeignKey(Tax, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Copied: a tax renamed or re-rated later must not change an issued invoice.
    tax_code = models.CharField(max_length=255)
    tax_name = models.CharField(max_length=255)
    tax_rate = rate_field()
    tax_description = models.TextField(blank=True)
    fees_amount = amount_field()
    amount = amount_field()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["invoice", "tax_code"], name="invoice_applied_tax_unique")]

    def __str__(self) -> str:
        return f"{self.tax_code} {self.tax_rate}%"


class FeeAppliedTax(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    fee = models.ForeignKey(Fee, on_delete=models.CASCADE, related_name="applied_taxes")
    tax = models.ForeignKey(Tax, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    tax_code = models.CharField(max_length=255)
    tax_name = models.CharField(max_length=255)
    tax_rate = rate_field()
    tax_description = models.TextField(blank=True)
    amount = precise_field()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["fee", "tax_code"], name="fee_applied_tax_unique")]

    def __str__(self) -> str:
        return f"{self.tax_code} {self.tax_rate}%"


class CreditNoteReason(models.TextChoices):
    DUPLICATED_CHARGE = "duplicated_charge", "Duplicated charge"
    PRODUCT_UNSATISFACTORY = "product_unsatisfactory", "Product unsatisfactory"
    ORDER_CHANGE = "order_change", "Order change"
    ORDER_CANCELLATION = "order_cancellation", "Order cancellation"
    FRAUDULENT_CHARGE = "fraudulent_charge", "Fraudulent charge"
    OTHER = "other", "Other"


class CreditStatus(models.TextChoices):
    AVAILABLE = "available", "Available"
    CONSUMED = "consumed", "Consumed"
    VOIDED = "voided", "Voided"


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class CreditNoteStatus(models.TextChoices):
    """Lago's CreditNote::STATUS. A draft is a proposal (a late-usage decrease under the review
    policy): no number, no credit, until finance finalizes it."""

    DRAFT = "draft", "Draft"
    FINALIZED = "finalized", "Finalized"


class FinalizedCreditNoteManager(models.Manager["CreditNote"]):
    """The default: finalized notes only. A draft is no credit note yet, so every balance,
    outstanding figure, statement, portal page and list that reads `CreditNote.objects` leaves
    it out without knowing about drafts (Lago's `credit_notes.finalized` in its API and reads).
    The few places that handle drafts say so with `CreditNote.all_objects`."""

    def get_queryset(self) -> models.QuerySet[CreditNote]:
        return super().get_queryset().filter(status=CreditNoteStatus.FINALIZED)


class CreditNote(models.Model):
    """A correction of a finalized invoice: credit (consumed by the customer's next invoices)
    and/or refund. Numbered `<invoice number>-CN<n>`; immutable once issued except its balance."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_notes")
    status = models.CharField(max_length=16, choices=CreditNoteStatus.choices, default=CreditNoteStatus.FINALIZED)
    # Both taken when the note is finalized (a draft consumes no number of the invoice's series).
    sequential_id = models.PositiveIntegerField(null=True, blank=True)
    number = models.CharField(max_length=80, unique=True, null=True, blank=True)
    reason = models.CharField(max_length=32, choices=CreditNoteReason.choices)
    description = models.TextField(blank=True)
    credit_status = models.CharField(max_length=16, choices=CreditStatus.choices, null=True, blank=True)
    refund_status = models.CharField(max_length=16, choices=RefundStatus.choices, null=True, blank=True)
    currency = models.CharField(max_length=3)
    issuing_date = models.DateField()
    credit_amount = amount_field()
    refund_amount = amount_field()
    # What is left of the credit for the customer's next invoices.
    balance_amount = amount_field()
    sub_total_excluding_taxes_amount = amount_field()
    coupons_adjustment_amount = amount_field()
    taxes_amount = amount_field()
    taxes_rate = rate_field()
    total_amount = amount_field()
    file = models.FileField(upload_to="credit_notes/", blank=True)
    # Lago's credit note metadata: {key: value or null}, set by the credit_notes/{id}/metadata routes.
    metadata = models.JSONField(default=dict, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    all_objects = models.Manager()
    objects = FinalizedCreditNoteManager()

    class Meta:
        ordering = ["-created_at"]
        default_manager_name = "objects"  # finalized notes; `all_objects` holds drafts too
        constraints = [
            models.UniqueConstraint(fields=["invoice", "sequential_id"], name="credit_note_invoice_sequence_unique"),
            models.CheckConstraint(
                condition=Q(balance_amount__gte=0) & Q(balance_amount__lte=models.F("credit_amount")),
                name="credit_note_balance_within_credit",
            ),
            # A finalized note has its number; a draft has none, and nothing to consume or refund.
            models.CheckConstraint(
                condition=Q(status=CreditNoteStatus.FINALIZED, number__isnull=False, sequential_id__isnull=False)
                | Q(
                    status=CreditNoteStatus.DRAFT,
                    number__isnull=True,
                    sequential_id__isnull=True,
                    credit_status__isnull=True,
                    refund_status__isnull=True,
                    balance_amount=0,
                ),
                name="credit_note_draft_has_no_number_nor_balance",
            ),
        ]

    def __str__(self) -> str:
        return self.number or f"Draft credit note on {self.invoice.number}"


class CreditNoteItem(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="items")
    fee = models.ForeignKey(Fee, on_delete=models.PROTECT, related_name="credit_note_items")
    amount = amount_field()
    precise_amount = precise_field()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.fee_id} {self.amount}"


class CreditNoteAppliedTax(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="applied_taxes")
    tax = models.ForeignKey(Tax, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    tax_code = models.CharField(max_length=255)
    tax_name = models.CharField(max_length=255)
    tax_rate = rate_field()
    tax_description = models.TextField(blank=True)
    base_amount = amount_field()
    amount = amount_field()

    def __str__(self) -> str:
        return f"{self.tax_code} {self.tax_rate}%"


class Credit(models.Model):
    """Ledger of what reduced an invoice's total: a coupon (before taxes) or a credit note's
    credit (after taxes). Rows of a finalized invoice are never removed (a draft's are rebuilt
    when it is refreshed). Per source, the rows on invoices that are not voided never add up to
    more than the source held: voiding an invoice gives its credit back to the notes and keeps
    its rows, so its frozen credit_notes_amount stays explained."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="credits")
    applied_coupon = models.ForeignKey(
        AppliedCoupon, on_delete=models.PROTECT, null=True, blank=True, related_name="credits"
    )
    credit_note = models.ForeignKey(CreditNote, on_delete=models.PROTECT, null=True, blank=True, related_name="credits")
    amount = amount_field()
    before_taxes = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(applied_coupon__isnull=False, credit_note__isnull=True)
                | Q(applied_coupon__isnull=True, credit_note__isnull=False),
                name="credit_has_one_source",
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="credit_amount_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.amount}"


class InvoiceEvent(models.Model):
    """Audit trail: one row per state change of an invoice or credit note (append-only)."""

    id = models.BigAutoField(primary_key=True)
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="events")
    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    # created, refreshed, finalized, voided, payment_status_updated, pdf_generated, credit_note_created, ...
    kind = models.CharField(max_length=40)
    # Who or what: "system:billing_run", "api:<key name>", "admin:<username>", "command:<name>".
    actor = models.CharField(max_length=255)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["invoice", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor}"


# The e-mail outbox, wallets, the dashboard's summaries and late-usage corrections live in their
# own packages; imported here so Django registers their models.
from .corrections.models import BilledThrough, Correction, FeeEvent, FeeEventSet, LateUsageMark  # noqa: E402, F401
from .mail.models import DocumentEmail  # noqa: E402, F401

# Usage monitoring (lifetime usage, alerts) likewise.
from .monitoring.models import (  # noqa: E402, F401
    Alert,
    AlertCrossing,
    AlertThreshold,
    AppliedUsageThreshold,
    LifetimeUsage,
    SubscriptionActivity,
    TriggeredAlert,
)
from .summaries.models import InvoiceDayRow, InvoiceDirtyDay, MrrDayRow, MrrDirtyDay  # noqa: E402, F401
from .wallets.models import RecurringTransactionRule, Wallet, WalletTransaction  # noqa: E402, F401
