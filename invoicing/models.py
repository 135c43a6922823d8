"""What they owe: invoices and what hangs off them.

Amounts are Decimal in major units of `currency`, rounded to the currency's minor unit
(billing_project.money); the API speaks integer `*_amount_cents`.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from djmoney.money import Money

from customers.models import Customer

AMOUNT = {"max_digits": 20, "decimal_places": 6, "default": 0}


class InvoiceType(models.TextChoices):
    SUBSCRIPTION = "subscription", "Subscription"
    ADD_ON = "add_on", "Add-on"
    ONE_OFF = "one_off", "One-off"
    CREDIT = "credit", "Credit"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    FINALIZED = "finalized", "Finalized"
    VOIDED = "voided", "Voided"
    FAILED = "failed", "Failed"


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
    invoice_type = models.CharField(max_length=16, choices=InvoiceType.choices, default=InvoiceType.SUBSCRIPTION)
    status = models.CharField(max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT)
    payment_status = models.CharField(max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    payment_overdue = models.BooleanField(default=False)
    currency = models.CharField(max_length=3)
    issuing_date = models.DateField()
    payment_due_date = models.DateField()
    net_payment_term = models.PositiveIntegerField(default=0)
    version_number = models.PositiveSmallIntegerField(default=4)

    fees_amount = models.DecimalField(**AMOUNT)
    coupons_amount = models.DecimalField(**AMOUNT)
    sub_total_excluding_taxes_amount = models.DecimalField(**AMOUNT)
    taxes_amount = models.DecimalField(**AMOUNT)
    sub_total_including_taxes_amount = models.DecimalField(**AMOUNT)
    credit_notes_amount = models.DecimalField(**AMOUNT)
    prepaid_credit_amount = models.DecimalField(**AMOUNT)
    total_amount = models.DecimalField(**AMOUNT)
    # What is still to collect: total minus payments received (moved by payments, never by edits).
    total_paid_amount = models.DecimalField(**AMOUNT)

    # The customer's billing details as they were at finalization (never updated afterwards).
    customer_snapshot = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=list, blank=True)
    file = models.FileField(upload_to="invoices/", blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-issuing_date", "-created_at"]
        indexes = [
            models.Index(fields=["status", "payment_status"]),
            models.Index(fields=["customer", "issuing_date"]),
        ]

    def __str__(self) -> str:
        return self.number or str(self.id)

    @property
    def total_due_amount(self) -> Decimal:
        """Nothing is due on a draft or voided invoice; never negative."""
        if self.status != InvoiceStatus.FINALIZED:
            return Decimal(0)
        return max(self.total_amount - self.total_paid_amount, Decimal(0))

    def as_money(self, field: str) -> Money:
        return Money(getattr(self, field), self.currency)
