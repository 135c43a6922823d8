"""Wallet, WalletTransaction and RecurringTransactionRule.

A wallet's `balance` (currency, major units) and `credits_balance` (credits) move only with a
settled transaction, under the wallet's row lock; the database refuses a negative balance
(CHECK), a second consumption of one wallet by one invoice, and a second top-up for one firing
of a recurring rule (unique constraints).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django.db.models import Q

from billing_project.fields import DecimalColumn, amount_field
from customers.models import Customer


def credits_field() -> DecimalColumn:
    """Credits, as Lago keeps them (30 digits, 5 decimals)."""
    return models.DecimalField(max_digits=30, decimal_places=5, default=0)


# Lago's Wallets::ValidateService::MAXIMUM_WALLETS_PER_CUSTOMER.
MAXIMUM_WALLETS_PER_CUSTOMER = 6
LOWEST_PRIORITY = 50


class WalletStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    TERMINATED = "terminated", "Terminated"


class Wallet(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="wallets")
    name = models.CharField(max_length=255, blank=True)
    code = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=WalletStatus.choices, default=WalletStatus.ACTIVE)
    currency = models.CharField(max_length=3)
    # The value of one credit in `currency`.
    rate_amount = models.DecimalField(max_digits=30, decimal_places=5)
    priority = models.PositiveSmallIntegerField(default=LOWEST_PRIORITY)
    expiration_at = models.DateTimeField(null=True, blank=True)
    terminated_at = models.DateTimeField(null=True, blank=True)
    invoice_requires_successful_payment = models.BooleanField(default=False)
    paid_top_up_min_amount = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    paid_top_up_max_amount = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    # applies_to: fee types, and billable metric ids (a JSON list, read with the wallet in one query).
    allowed_fee_types = models.JSONField(default=list, blank=True)
    billable_metric_ids = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    balance = amount_field()
    credits_balance = credits_field()
    consumed_amount = amount_field()
    consumed_credits = credits_field()
    # Balance minus the current usage not invoiced yet (refreshed by a periodic task).
    ongoing_balance = amount_field()
    ongoing_usage_balance = amount_field()
    credits_ongoing_balance = credits_field()
    credits_ongoing_usage_balance = credits_field()
    depleted_ongoing_balance = models.BooleanField(default=False)
    last_balance_sync_at = models.DateTimeField(null=True, blank=True)
    last_consumed_credit_at = models.DateTimeField(null=True, blank=True)
    last_ongoing_balance_sync_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "created_at", "id"]
        indexes = [models.Index(fields=["customer", "status"])]
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="wallet_balance_not_negative"),
            models.CheckConstraint(condition=Q(credits_balance__gte=0), name="wallet_credits_balance_not_negative"),
            models.CheckConstraint(condition=Q(rate_amount__gt=0), name="wallet_rate_amount_positive"),
            models.CheckConstraint(
                condition=Q(priority__gte=1, priority__lte=LOWEST_PRIORITY), name="wallet_priority_in_range"
            ),
            models.UniqueConstraint(fields=["customer", "code"], name="wallet_customer_code_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.code} ({self.currency})"

    def to_credits(self, amount: Decimal) -> Decimal:
        return (Decimal(amount) / self.rate_amount).quantize(Decimal("0.00001"))


class TransactionType(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"


class TransactionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SETTLED = "settled", "Settled"
    FAILED = "failed", "Failed"


class TransactionKind(models.TextChoices):
    """Lago's `transaction_status`: what the credits are."""

    PURCHASED = "purchased", "Purchased"
    GRANTED = "granted", "Granted"
    VOIDED = "voided", "Voided"
    INVOICED = "invoiced", "Invoiced"


class TransactionSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    INTERVAL = "interval", "Interval"
    THRESHOLD = "threshold", "Threshold"


class RuleTrigger(models.TextChoices):
    INTERVAL = "interval", "Interval"
    THRESHOLD = "threshold", "Threshold"


class RuleMethod(models.TextChoices):
    FIXED = "fixed", "Fixed"
    TARGET = "target", "Target"


class RuleInterval(models.TextChoices):
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"
    QUARTERLY = "quarterly", "Quarterly"
    SEMIANNUAL = "semiannual", "Semiannual"
    YEARLY = "yearly", "Yearly"


class RecurringTransactionRule(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    wallet = models.ForeignKey(Wallet, on_delete=models.CASCADE, related_name="recurring_transaction_rules")
    trigger = models.CharField(max_length=16, choices=RuleTrigger.choices, default=RuleTrigger.INTERVAL)
    method = models.CharField(max_length=16, choices=RuleMethod.choices, default=RuleMethod.FIXED)
    interval = models.CharField(max_length=16, choices=RuleInterval.choices, blank=True)
    threshold_credits = credits_field()
    paid_credits = credits_field()
    granted_credits = credits_field()
    target_ongoing_balance = models.DecimalField(max_digits=30, decimal_places=5, null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    expiration_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=WalletStatus.choices, default=WalletStatus.ACTIVE)
    terminated_at = models.DateTimeField(null=True, blank=True)
    transaction_name = models.CharField(max_length=255, blank=True)
    transaction_metadata = models.JSONField(default=list, blank=True)
    invoice_requires_successful_payment = models.BooleanField(default=False)
    ignore_paid_top_up_limits = models.BooleanField(default=False)
    # Threshold rules fire once per crossing: `threshold_crossings` counts the firings (the unique
    # key of each top-up) and `threshold_armed` is false between a firing and the balance rising
    # above the threshold again.
    threshold_crossings = models.PositiveIntegerField(default=0)
    threshold_armed = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.trigger} {self.method}"


class WalletTransaction(models.Model):
    """One movement of a wallet (append-only, except a pending top-up settling or failing).
    Inbound: purchased (pending until its credit invoice is paid), granted, or given back by a
    voided invoice. Outbound: consumed by an invoice (invoiced) or removed (voided, expired)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="transactions")
    transaction_type = models.CharField(max_length=16, choices=TransactionType.choices)
    status = models.CharField(max_length=16, choices=TransactionStatus.choices)
    transaction_status = models.CharField(max_length=16, choices=TransactionKind.choices)
    source = models.CharField(max_length=16, choices=TransactionSource.choices, default=TransactionSource.MANUAL)
    amount = amount_field()
    credit_amount = credits_field()
    # Purchased: its credit invoice; invoiced: the invoice that consumed the credits.
    invoice = models.ForeignKey(
        "invoicing.Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="wallet_transactions"
    )
    # Inbound credits given back when this invoice was voided.
    voided_invoice = models.ForeignKey(
        "invoicing.Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    recurring_rule = models.ForeignKey(
        RecurringTransactionRule, on_delete=models.PROTECT, null=True, blank=True, related_name="transactions"
    )
    # Which firing of the rule made this top-up ("interval:2025-02-01", "threshold:3").
    rule_firing = models.CharField(max_length=64, null=True, blank=True)
    priority = models.PositiveSmallIntegerField(default=LOWEST_PRIORITY)
    name = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=list, blank=True)
    invoice_requires_successful_payment = models.BooleanField(default=False)
    settled_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["wallet", "created_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="wallet_transaction_amount_not_negative"),
            models.UniqueConstraint(
                fields=["recurring_rule", "rule_firing"],
                condition=Q(recurring_rule__isnull=False, rule_firing__isnull=False),
                name="wallet_transaction_one_per_rule_firing",
            ),
            # An invoice consumes a wallet once (Lago's "already_applied").
            models.UniqueConstraint(
                fields=["wallet", "invoice"],
                condition=Q(transaction_type="outbound", transaction_status="invoiced"),
                name="wallet_transaction_one_consumption_per_invoice",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.transaction_type} {self.transaction_status} {self.credit_amount}"
