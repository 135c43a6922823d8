"""What it costs: the catalog (taxes, plans with charges, add-ons, coupons) and subscriptions."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from billing_project.fields import money_field
from billing_project.history import history_user
from customers.models import Customer
from metrics.models import BillableMetric


class LiveManager(models.Manager):
    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(deleted_at__isnull=True)


class LivePlanManager(LiveManager):
    """Live catalogue plans: a subscription's override (a child plan) is never found by code."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(parent__isnull=True)


class Tax(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255)
    rate = models.DecimalField(max_digits=9, decimal_places=4, help_text="Percent, e.g. 20 for 20%")
    description = models.TextField(blank=True)
    applied_to_organization = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Change history with before/after values (the console's Activity page).
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "taxes"

    def __str__(self) -> str:
        return f"{self.code} ({self.rate}%)"


class CustomerTax(models.Model):
    """Tax codes applied to a customer (override the organization's default taxes)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="applied_taxes")
    tax = models.ForeignKey(Tax, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "tax"], name="customer_tax_unique")]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.tax_id}"


class PlanInterval(models.TextChoices):
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"
    QUARTERLY = "quarterly", "Quarterly"
    SEMIANNUAL = "semiannual", "Semiannual"
    YEARLY = "yearly", "Yearly"


class Plan(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    code = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    interval = models.CharField(max_length=16, choices=PlanInterval.choices)
    amount = money_field()
    pay_in_advance = models.BooleanField(default=False)
    trial_period = models.DecimalField(max_digits=10, decimal_places=2, default=0, help_text="Days")
    bill_charges_monthly = models.BooleanField(null=True, blank=True)
    invoice_display_name = models.CharField(max_length=255, blank=True)
    taxes = models.ManyToManyField(Tax, blank=True, related_name="plans")
    # Lago's plan_overrides: a subscription's own terms are a child plan (same code, parent set),
    # a copy of the parent with the overridden values, attached to that one subscription.
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="children")
    # Lago's item metadata: string keys (up to 100 characters) to strings or null.
    metadata = models.JSONField(null=True, blank=True)
    # An override's minimum_commitment, stored as asked (Lago's shape) until plans bill one.
    minimum_commitment_override = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = models.Manager()
    live = LivePlanManager()

    # Change history with before/after values (the console's Activity page).
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["code"],
                condition=Q(deleted_at__isnull=True, parent__isnull=True),
                name="plan_code_live_parent_unique",
            )
        ]

    def __str__(self) -> str:
        return self.code


class ChargeModel(models.TextChoices):
    STANDARD = "standard", "Standard"
    GRADUATED = "graduated", "Graduated"
    PACKAGE = "package", "Package"
    PERCENTAGE = "percentage", "Percentage"
    VOLUME = "volume", "Volume"
    GRADUATED_PERCENTAGE = "graduated_percentage", "Graduated percentage"
    DYNAMIC = "dynamic", "Dynamic"


class Charge(models.Model):
    """A usage-based price on a plan. Removed charges are soft-deleted so billed fees keep them."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="charges")
    # Lago's charge code: unique among the plan's live charges (the API's path to the charge),
    # by default the metric's code, with _2, _3... for further charges on the same metric.
    code = models.CharField(max_length=255)
    # On an override plan: the catalogue charge this one copies (Lago's charges.parent_id).
    parent = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children")
    billable_metric = models.ForeignKey(BillableMetric, on_delete=models.PROTECT, related_name="charges")
    charge_model = models.CharField(max_length=32, choices=ChargeModel.choices)
    # Lago's JSON shape for the charge model, amounts as decimal strings in major units.
    properties = models.JSONField(default=dict, blank=True)
    pay_in_advance = models.BooleanField(default=False)
    invoiceable = models.BooleanField(default=True)
    prorated = models.BooleanField(default=False)
    # A spending minimum per period, in the plan's currency (major units).
    min_amount = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    invoice_display_name = models.CharField(max_length=255, blank=True)
    taxes = models.ManyToManyField(Tax, blank=True, related_name="charges")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = models.Manager()
    live = LiveManager()

    # Change history with before/after values (the console's Activity page).
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "code"], condition=Q(deleted_at__isnull=True), name="charge_code_live_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.plan.code}/{self.code} ({self.charge_model})"


class ChargeFilter(models.Model):
    """Prices a slice of a charge's events: `values` {"key": ["v1", ...]}; most specific match wins."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    charge = models.ForeignKey(Charge, on_delete=models.CASCADE, related_name="filters")
    values = models.JSONField(default=dict)
    properties = models.JSONField(default=dict)
    invoice_display_name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.invoice_display_name or str(self.values)


class AddOn(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    code = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    amount = money_field()
    invoice_display_name = models.CharField(max_length=255, blank=True)
    taxes = models.ManyToManyField(Tax, blank=True, related_name="add_ons")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = models.Manager()
    live = LiveManager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["code"], condition=Q(deleted_at__isnull=True), name="addon_code_live_unique"
            )
        ]

    def __str__(self) -> str:
        return self.code


class CouponType(models.TextChoices):
    FIXED_AMOUNT = "fixed_amount", "Fixed amount"
    PERCENTAGE = "percentage", "Percentage"


class CouponFrequency(models.TextChoices):
    ONCE = "once", "Once"
    RECURRING = "recurring", "Recurring"
    FOREVER = "forever", "Forever"


class Coupon(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    code = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    coupon_type = models.CharField(max_length=16, choices=CouponType.choices)
    amount = money_field(null=True)
    percentage_rate = models.DecimalField(max_digits=9, decimal_places=4, null=True, blank=True)
    frequency = models.CharField(max_length=16, choices=CouponFrequency.choices, default=CouponFrequency.ONCE)
    frequency_duration = models.PositiveIntegerField(null=True, blank=True)
    expiration = models.CharField(
        max_length=16,
        choices=[("no_expiration", "No expiration"), ("time_limit", "Time limit")],
        default="no_expiration",
    )
    expiration_at = models.DateTimeField(null=True, blank=True)
    reusable = models.BooleanField(default=True)
    limited_plans = models.BooleanField(default=False)
    plans = models.ManyToManyField(Plan, blank=True, related_name="coupons")
    limited_billable_metrics = models.BooleanField(default=False)
    billable_metrics = models.ManyToManyField(BillableMetric, blank=True, related_name="coupons")
    terminated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = models.Manager()
    live = LiveManager()

    # Change history with before/after values (the console's Activity page).
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["code"], condition=Q(deleted_at__isnull=True), name="coupon_code_live_unique"
            )
        ]

    def __str__(self) -> str:
        return self.code


class AppliedCoupon(models.Model):
    """A coupon granted to a customer; invoices consume it (amount left, periods left)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="applied_coupons")
    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="applied_coupons")
    amount = money_field(null=True)
    # What is left of a fixed amount coupon with frequency "once" (carried to next invoices).
    amount_remaining = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    percentage_rate = models.DecimalField(max_digits=9, decimal_places=4, null=True, blank=True)
    frequency = models.CharField(max_length=16, choices=CouponFrequency.choices)
    frequency_duration = models.PositiveIntegerField(null=True, blank=True)
    frequency_duration_remaining = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=[("active", "Active"), ("terminated", "Terminated")], default="active"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    terminated_at = models.DateTimeField(null=True, blank=True)

    # Declared for the type checker only: djmoney makes the default manager's class at run time
    # (a Money-aware subclass of Manager), which django-stubs cannot resolve. Assigning a manager
    # here would replace djmoney's.
    objects: ClassVar[models.Manager[AppliedCoupon]]
    _default_manager: ClassVar[models.Manager[AppliedCoupon]]

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.coupon_id} for {self.customer_id}"


class BillingTime(models.TextChoices):
    CALENDAR = "calendar", "Calendar"
    ANNIVERSARY = "anniversary", "Anniversary"


class SubscriptionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    TERMINATED = "terminated", "Terminated"
    CANCELED = "canceled", "Canceled"


class Subscription(models.Model):
    """A customer on a plan. A plan change ends this row and starts a new one with the same
    external_id, linked through `previous_subscription`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    external_id = models.CharField(max_length=255)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    name = models.CharField(max_length=255, blank=True)
    billing_time = models.CharField(max_length=16, choices=BillingTime.choices, default=BillingTime.CALENDAR)
    status = models.CharField(max_length=16, choices=SubscriptionStatus.choices, default=SubscriptionStatus.PENDING)
    subscription_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    ending_at = models.DateTimeField(null=True, blank=True)
    terminated_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    previous_subscription = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="next_subscriptions"
    )
    # On a pending downgrade: when it replaces `previous_subscription` (the end of the billing
    # period during which it was asked), fixed when asked so a late task run swaps at the boundary.
    downgrade_at = models.DateTimeField(null=True, blank=True)
    # When Tollgate was told of this subscription (the creating request's instant). Periods that
    # ended before it are never billed, and a start before its local day counts as paid already
    # (the catch-up policy, invoicing.windows).
    recorded_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"], condition=Q(status="active"), name="subscription_external_id_active_unique"
            ),
            models.UniqueConstraint(
                fields=["external_id"], condition=Q(status="pending"), name="subscription_external_id_pending_unique"
            ),
        ]
        indexes = [models.Index(fields=["external_id", "status"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return self.external_id


# Entitlements live in their own module of this app (features, privileges, grants).
from .entitlements.models import (  # noqa: E402, F401
    Entitlement,
    EntitlementRemoval,
    EntitlementValue,
    Feature,
    Privilege,
)
