"""Money collected: one `Payment` row per attempt to collect a finalized invoice.

Payments are a ledger: a Stripe attempt is a row (a retry is a new row, never an edit of the old
one), a manual payment is a row. An invoice's `total_paid_amount` is the sum of its succeeded
rows; a payment never changes the invoice's amounts.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from djmoney.money import Money

from billing_project.fields import amount_field
from customers.models import Customer
from invoicing.models import CreditNote, Invoice


class PaymentProviderName(models.TextChoices):
    STRIPE = "stripe", "Stripe"
    MANUAL = "manual", "Manual"


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    REQUIRES_ACTION = "requires_action", "Requires action"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


# Where a payment may go next. Out-of-order provider events must never move a payment backwards:
# `succeeded` is final, `failed` only gives way to a late success of the same PaymentIntent.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    PaymentStatus.PENDING: frozenset(
        {PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION, PaymentStatus.SUCCEEDED, PaymentStatus.FAILED}
    ),
    PaymentStatus.PROCESSING: frozenset({PaymentStatus.REQUIRES_ACTION, PaymentStatus.SUCCEEDED, PaymentStatus.FAILED}),
    PaymentStatus.REQUIRES_ACTION: frozenset({PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED, PaymentStatus.FAILED}),
    PaymentStatus.FAILED: frozenset({PaymentStatus.SUCCEEDED}),
    PaymentStatus.SUCCEEDED: frozenset(),
}

# A Stripe attempt in one of these states may still take money: no second attempt may start.
IN_FLIGHT_STATUSES = (PaymentStatus.PENDING, PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION)


class PaymentTrigger(models.TextChoices):
    FINALIZATION = "finalization", "Invoice finalized"
    RETRY_SCHEDULE = "retry_schedule", "Automatic retry"
    API = "api", "Retry through the API"
    ADMIN = "admin", "Retry from the admin"
    MANUAL = "manual", "Recorded by hand"
    # Paid by the customer on a Stripe Checkout page (payment_url, the portal's Pay now, a wallet
    # top-up's payment_url).
    CHECKOUT = "checkout", "Paid through Stripe Checkout"
    DUNNING = "dunning", "Dunning step"


class Payment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    # The invoice's customer, kept on the row (as Lago does) so a customer's payments are one
    # index range instead of a join through all of the customer's invoices.
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments")
    provider = models.CharField(max_length=16, choices=PaymentProviderName.choices)
    status = models.CharField(max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    # Major units of `currency` (the invoice's). For Stripe: what was asked of the card, which can
    # exceed the amount due by less than one chargeable step (see providers.stripe.stripe_amount).
    amount = amount_field(zero_default=False)
    currency = models.CharField(max_length=3)
    # 1, 2, ... per invoice for provider attempts; null for manual payments.
    attempt = models.PositiveIntegerField(null=True, blank=True)
    trigger = models.CharField(max_length=16, choices=PaymentTrigger.choices)
    provider_customer_id = models.CharField(max_length=255, blank=True)
    provider_payment_id = models.CharField(max_length=255, blank=True)
    # Sent with the provider request; the same attempt re-sent never creates a second charge.
    idempotency_key = models.CharField(max_length=255, blank=True)
    failure_code = models.CharField(max_length=255, blank=True)
    failure_reason = models.TextField(blank=True)
    # What the customer must do for a `requires_action` payment (Stripe's next_action).
    next_action = models.JSONField(null=True, blank=True)
    # Manual payments: the bank transfer reference or cheque number (Lago: at most 40 characters).
    reference = models.CharField(max_length=40, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.UniqueConstraint(
                fields=["invoice", "attempt"],
                condition=Q(provider=PaymentProviderName.STRIPE),
                name="payment_one_row_per_stripe_attempt",
            ),
            # Two attempts in flight at once could both take money: the database refuses the second.
            models.UniqueConstraint(
                fields=["invoice"],
                condition=Q(provider=PaymentProviderName.STRIPE, status__in=IN_FLIGHT_STATUSES),
                name="payment_one_stripe_attempt_in_flight",
            ),
            models.UniqueConstraint(
                fields=["provider", "provider_payment_id"],
                condition=~Q(provider_payment_id=""),
                name="payment_provider_payment_id_unique",
            ),
            models.UniqueConstraint(
                fields=["idempotency_key"], condition=~Q(idempotency_key=""), name="payment_idempotency_key_unique"
            ),
            models.CheckConstraint(
                condition=Q(provider=PaymentProviderName.MANUAL, attempt__isnull=True, status=PaymentStatus.SUCCEEDED)
                | Q(provider=PaymentProviderName.STRIPE, attempt__isnull=False, attempt__gte=1),
                name="payment_attempt_matches_provider",
            ),
            models.CheckConstraint(
                condition=~Q(status=PaymentStatus.SUCCEEDED) | Q(paid_at__isnull=False),
                name="payment_succeeded_has_paid_at",
            ),
        ]
        indexes = [
            models.Index(fields=["invoice", "status"]),
            models.Index(fields=["customer", "-created_at"]),
            models.Index(fields=["provider", "status", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.amount} {self.currency} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED)

    def can_move_to(self, status: str) -> bool:
        return status in ALLOWED_TRANSITIONS[self.status]

    def as_money(self) -> Money:
        return Money(self.amount, self.currency)


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Refund(models.Model):
    """Money given back through a provider for a credit note's refund: one row per payment
    refunded (a note's refund may span two Stripe payments of its invoice). Planned once, under
    the invoice's lock, then sent; a re-sent row never refunds twice (idempotency key, and a
    lookup of the provider's refunds for this row before any second request)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    credit_note = models.ForeignKey(CreditNote, on_delete=models.PROTECT, related_name="refunds")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    provider = models.CharField(max_length=16, choices=PaymentProviderName.choices)
    status = models.CharField(max_length=16, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    # Major units of `currency`: what the provider was asked to give back (on Stripe's steps, see
    # providers.stripe.stripe_amount; at most one step above the note's refund for BHD and alike).
    amount = amount_field(zero_default=False)
    currency = models.CharField(max_length=3)
    provider_refund_id = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=255)
    failure_code = models.CharField(max_length=255, blank=True)
    failure_reason = models.TextField(blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            # A note's refund is planned once: a second plan for the same payment is refused.
            models.UniqueConstraint(fields=["credit_note", "payment"], name="refund_one_row_per_note_and_payment"),
            models.UniqueConstraint(
                fields=["provider", "provider_refund_id"],
                condition=~Q(provider_refund_id=""),
                name="refund_provider_refund_id_unique",
            ),
            models.UniqueConstraint(fields=["idempotency_key"], name="refund_idempotency_key_unique"),
            models.CheckConstraint(
                condition=~Q(status=RefundStatus.SUCCEEDED) | Q(refunded_at__isnull=False),
                name="refund_succeeded_has_refunded_at",
            ),
        ]
        indexes = [models.Index(fields=["status", "updated_at"])]

    def __str__(self) -> str:
        return f"Refund {self.amount} {self.currency} ({self.status})"


class CustomerPaymentSetup(Customer):
    """The customers app's Customer seen from payments: its Stripe customer and payment method.

    A proxy (no table of its own) so the admin can show and fix a customer's payment setup
    without the customers app knowing about Stripe.
    """

    class Meta:
        proxy = True
        verbose_name = "customer payment setup"
        verbose_name_plural = "customer payment setups"


class InvoiceToCollect(Invoice):
    """The invoicing app's Invoice seen from payments: what is due, and the actions that collect
    it (retry now, mark paid by hand). A proxy: no table of its own."""

    class Meta:
        proxy = True
        verbose_name = "invoice to collect"
        verbose_name_plural = "invoices to collect"


class PaymentReceipt(models.Model):
    """Lago's payment receipt: issued for every succeeded payment (Stripe, manual, partial ones
    included), in the payment's transaction. Numbered per customer without gaps,
    `<customer slug>-RCPT-<6 digits>` (Lago's format: TOL-001-RCPT-000001); payments.receipts."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, related_name="receipt")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payment_receipts")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payment_receipts")
    sequential_id = models.PositiveIntegerField()
    number = models.CharField(max_length=64, unique=True)
    file = models.FileField(upload_to="payment_receipts/", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "sequential_id"], name="payment_receipt_customer_sequence_unique"
            )
        ]
        indexes = [models.Index(fields=["invoice", "created_at"])]

    def __str__(self) -> str:
        return self.number


class PaymentRequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class PaymentRequest(models.Model):
    """Lago's payment request: one request to a customer for several of its overdue invoices (one
    currency), e-mailed with a pay link. Succeeded once every invoice is paid; failed when a card
    retry it started fails (payments.payment_requests)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payment_requests")
    email = models.CharField(max_length=1024, blank=True)
    # What the invoices still owed when the request was made (major units of `currency`).
    amount = amount_field(zero_default=False)
    currency = models.CharField(max_length=3)
    payment_status = models.CharField(
        max_length=16, choices=PaymentRequestStatus.choices, default=PaymentRequestStatus.PENDING
    )
    invoices = models.ManyToManyField(Invoice, through="PaymentRequestInvoice", related_name="payment_requests")
    # The dunning step that made it (null: made through the API).
    dunning_step = models.ForeignKey(
        "DunningStep", on_delete=models.SET_NULL, null=True, blank=True, related_name="payment_requests"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["customer", "-created_at"]), models.Index(fields=["payment_status"])]

    def __str__(self) -> str:
        return f"Payment request {self.amount} {self.currency} ({self.payment_status})"


class PaymentRequestInvoice(models.Model):
    payment_request = models.ForeignKey(PaymentRequest, on_delete=models.CASCADE, related_name="applied_invoices")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["payment_request", "invoice"], name="payment_request_invoice_unique")
        ]

    def __str__(self) -> str:
        return f"{self.payment_request_id} {self.invoice_id}"


class DunningCampaign(models.Model):
    """An ordered schedule of reminders for overdue invoices (Lago's dunning campaigns, free
    here). The default campaign applies to every customer not excluded
    (Customer.exclude_from_dunning_campaign); payments.dunning runs it daily."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    is_default = models.BooleanField(default=False, help_text="Applies to every customer not excluded")
    bcc_emails = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="dunning_one_default")
        ]

    def __str__(self) -> str:
        return self.name


class DunningStep(models.Model):
    """One reminder: `days_past_due` days after an invoice's due date, a payment request is
    e-mailed (and, with `retry_card`, the card is charged again)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    campaign = models.ForeignKey(DunningCampaign, on_delete=models.CASCADE, related_name="steps")
    days_past_due = models.PositiveIntegerField()
    retry_card = models.BooleanField(default=False, help_text="Also charge the customer's card (Stripe)")

    class Meta:
        ordering = ["campaign", "days_past_due"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "days_past_due"], name="dunning_step_days_unique"),
            models.CheckConstraint(condition=Q(days_past_due__gte=1), name="dunning_step_after_due_date"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} +{self.days_past_due}d"


class DunningThreshold(models.Model):
    """Lago's campaign threshold: the campaign reminds a customer in `currency` only while its
    overdue balance in that currency is at least `amount` (it stops below it)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    campaign = models.ForeignKey(DunningCampaign, on_delete=models.CASCADE, related_name="thresholds")
    currency = models.CharField(max_length=3)
    amount = amount_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "currency"], name="dunning_threshold_currency_unique"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="dunning_threshold_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.currency} {self.amount}"


class DunningAttempt(models.Model):
    """A step done (or skipped: reached together with a later one) for an invoice. Unique per
    (step, invoice): the database refuses a step twice for the same invoice."""

    id = models.BigAutoField(primary_key=True)
    step = models.ForeignKey(DunningStep, on_delete=models.CASCADE, related_name="attempts")
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="dunning_attempts")
    payment_request = models.ForeignKey(
        PaymentRequest, on_delete=models.SET_NULL, null=True, blank=True, related_name="dunning_attempts"
    )
    skipped = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["step", "invoice"], name="dunning_step_once_per_invoice")]

    def __str__(self) -> str:
        return f"{self.step} {self.invoice_id}"


class PaymentDayRow(models.Model):
    """Succeeded payments of one day (in `time_zone`, the organization's when written) and
    currency: what the dashboard's Collected and its chart sum (payments.analytics). Rows of
    another zone than the organization's are rebuilt by the next read."""

    id = models.BigAutoField(primary_key=True)
    day = models.DateField()
    time_zone = models.CharField(max_length=64)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=40, decimal_places=20)
    count = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["time_zone", "day"], name="payment_day_row_day_idx")]

    def __str__(self) -> str:
        return f"{self.day} {self.currency}: {self.amount} collected"


class PaymentDirtyDay(models.Model):
    """A UTC day whose payments changed (written by the trigger of migration 0014 in the
    transaction of the change); the next read recomputes the local days it touches. Not unique:
    a refresh deletes the rows it read by id, so a change committed meanwhile keeps its own."""

    id = models.BigAutoField(primary_key=True)
    day = models.DateField()

    def __str__(self) -> str:
        return f"{self.day} (dirty)"
