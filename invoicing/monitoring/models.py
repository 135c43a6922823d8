"""Usage monitoring: lifetime usage, usage alerts and the activity that wakes them.

- LifetimeUsage: what a subscription (its external id, across plan changes) used before
  Tollgate knew it (`historical_usage_amount`, set by the API); the invoiced and current parts
  are computed when read (invoicing.monitoring.lifetime), never stored, so they cannot drift.
- Alert (+ AlertThreshold): Lago's usage alerts on a subscription, and its wallet alerts
  (balance, credits, ongoing balance, ongoing credits; `direction` decreasing). An alert belongs
  to a subscription (external id) or to a wallet, never both (CHECK). Each threshold crossing is
  a row of AlertCrossing, unique per (alert, period, value) in the database: a crossing is
  announced once (alert.triggered, from the TriggeredAlert that groups one evaluation's new
  crossings), however many workers evaluate at once.
- SubscriptionActivity: "this subscription received usage since it was last evaluated", one
  row per subscription (unique), written after an ingestion batch committed and deleted once
  the subscription's alerts and usage thresholds were checked.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from billing_project.fields import DecimalColumn, amount_field
from metrics.models import BillableMetric
from plans.models import Subscription, UsageThreshold


def alert_value_field() -> DecimalColumn:
    """Lago's alert values (30 digits, 5 decimals): cents for amounts, units for units."""
    return models.DecimalField(max_digits=30, decimal_places=5, default=0)


class LifetimeUsage(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    external_subscription_id = models.CharField(max_length=255, unique=True)
    # Major units of the subscription's plan currency (Lago's historical_usage_amount_cents).
    historical_usage_amount = amount_field()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(historical_usage_amount__gte=0), name="lifetime_usage_historical_not_negative"
            )
        ]

    def __str__(self) -> str:
        return self.external_subscription_id


class AlertType(models.TextChoices):
    CURRENT_USAGE_AMOUNT = "current_usage_amount", "Current usage amount"
    BILLABLE_METRIC_CURRENT_USAGE_AMOUNT = "billable_metric_current_usage_amount", "Metric current usage amount"
    BILLABLE_METRIC_CURRENT_USAGE_UNITS = "billable_metric_current_usage_units", "Metric current usage units"
    LIFETIME_USAGE_AMOUNT = "lifetime_usage_amount", "Lifetime usage amount"
    # Lago's UsageMonitoring::Alert::WALLET_TYPES (app/models/usage_monitoring/wallet_*_alert.rb).
    WALLET_BALANCE_AMOUNT = "wallet_balance_amount", "Wallet balance amount"
    WALLET_CREDITS_BALANCE = "wallet_credits_balance", "Wallet credits balance"
    WALLET_ONGOING_BALANCE_AMOUNT = "wallet_ongoing_balance_amount", "Wallet ongoing balance amount"
    WALLET_CREDITS_ONGOING_BALANCE = "wallet_credits_ongoing_balance", "Wallet credits ongoing balance"


METRIC_ALERT_TYPES = (AlertType.BILLABLE_METRIC_CURRENT_USAGE_AMOUNT, AlertType.BILLABLE_METRIC_CURRENT_USAGE_UNITS)
WALLET_ALERT_TYPES = (
    AlertType.WALLET_BALANCE_AMOUNT,
    AlertType.WALLET_CREDITS_BALANCE,
    AlertType.WALLET_ONGOING_BALANCE_AMOUNT,
    AlertType.WALLET_CREDITS_ONGOING_BALANCE,
)
SUBSCRIPTION_ALERT_TYPES = tuple(t for t in AlertType if t not in WALLET_ALERT_TYPES)


class AlertDirection(models.TextChoices):
    """Lago's alert direction: usage alerts fire as a value rises, wallet alerts as it falls."""

    INCREASING = "increasing", "Increasing"
    DECREASING = "decreasing", "Decreasing"


class Alert(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # A subscription's alert (its external id), or a wallet's: exactly one of the two.
    external_subscription_id = models.CharField(max_length=255, null=True, blank=True)
    wallet = models.ForeignKey(
        "invoicing.Wallet", on_delete=models.PROTECT, null=True, blank=True, related_name="alerts"
    )
    alert_type = models.CharField(max_length=48, choices=AlertType.choices)
    direction = models.CharField(max_length=16, choices=AlertDirection.choices, default=AlertDirection.INCREASING)
    billable_metric = models.ForeignKey(
        BillableMetric, on_delete=models.PROTECT, null=True, blank=True, related_name="alerts"
    )
    code = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    # The value seen at the last evaluation (what Lago answers as previous_value).
    previous_value = alert_value_field()
    last_processed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # Lago's three unique indexes on usage_monitoring_alerts.
            models.UniqueConstraint(
                fields=["external_subscription_id", "code"],
                condition=Q(deleted_at__isnull=True),
                name="alert_code_unique_per_subscription",
            ),
            models.UniqueConstraint(
                fields=["external_subscription_id", "alert_type"],
                condition=Q(deleted_at__isnull=True, billable_metric__isnull=True),
                name="alert_type_unique_per_subscription",
            ),
            models.UniqueConstraint(
                fields=["external_subscription_id", "alert_type", "billable_metric"],
                condition=Q(deleted_at__isnull=True, billable_metric__isnull=False),
                name="alert_type_unique_per_subscription_metric",
            ),
            # Lago's chk_alerts_subscription_xor_wallet and idx_alerts_unique_per_type_per_wallet;
            # a code is unique per wallet too (the routes find a wallet's alert by its code).
            models.CheckConstraint(
                condition=Q(external_subscription_id__isnull=False, wallet__isnull=True)
                | Q(external_subscription_id__isnull=True, wallet__isnull=False),
                name="alert_subscription_xor_wallet",
            ),
            models.UniqueConstraint(
                fields=["wallet", "code"], condition=Q(deleted_at__isnull=True), name="alert_code_unique_per_wallet"
            ),
            models.UniqueConstraint(
                fields=["wallet", "alert_type"],
                condition=Q(deleted_at__isnull=True),
                name="alert_type_unique_per_wallet",
            ),
        ]
        indexes = [
            models.Index(
                fields=["external_subscription_id"], condition=Q(deleted_at__isnull=True), name="alert_live_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.external_subscription_id or self.wallet_id}/{self.code}"


class AlertThreshold(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="thresholds")
    code = models.CharField(max_length=255, blank=True)
    value = alert_value_field()
    recurring = models.BooleanField(default=False)

    class Meta:
        ordering = ["value", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert"], condition=Q(recurring=True), name="alert_one_recurring_threshold"
            ),
            # Lago: values are never negative, and a recurring step is positive.
            models.CheckConstraint(
                condition=Q(value__gte=0) & (Q(recurring=False) | Q(value__gt=0)), name="alert_threshold_valid_value"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.value}{' (recurring)' if self.recurring else ''}"


class TriggeredAlert(models.Model):
    """One evaluation that crossed thresholds: what alert.triggered announces."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="triggered")
    # The subscription's (usage alerts) or the wallet's (wallet alerts): exactly one (CHECK).
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, null=True, blank=True, related_name="triggered_alerts"
    )
    wallet = models.ForeignKey(
        "invoicing.Wallet", on_delete=models.PROTECT, null=True, blank=True, related_name="triggered_alerts"
    )
    current_value = alert_value_field()
    previous_value = alert_value_field()
    crossed_thresholds = models.JSONField(default=list)
    triggered_at = models.DateTimeField()

    class Meta:
        ordering = ["triggered_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(subscription__isnull=False, wallet__isnull=True)
                | Q(subscription__isnull=True, wallet__isnull=False),
                name="triggered_alert_subscription_xor_wallet",
            )
        ]

    def __str__(self) -> str:
        return f"{self.alert_id} at {self.triggered_at:%Y-%m-%d %H:%M}"


class AlertCrossing(models.Model):
    """A threshold value crossed in a period (the current usage period's start; the
    subscription's start for lifetime alerts; for a wallet alert, the time of the evaluation
    that saw the value on the other side of the threshold). Unique: announced once."""

    id = models.BigAutoField(primary_key=True)
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="crossings")
    period_from_datetime = models.DateTimeField()
    value = alert_value_field()
    triggered_alert = models.ForeignKey(TriggeredAlert, on_delete=models.CASCADE, related_name="crossings")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "period_from_datetime", "value"], name="alert_crossing_once_per_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.alert_id} {self.value}"


class SubscriptionActivity(models.Model):
    """A subscription whose usage changed and is waiting for its alerts and thresholds check."""

    id = models.BigAutoField(primary_key=True)
    subscription = models.OneToOneField(Subscription, on_delete=models.CASCADE, related_name="usage_activity")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return str(self.subscription_id)


class AppliedUsageThreshold(models.Model):
    """A usage threshold level a progressive billing invoice billed (Lago's
    AppliedUsageThreshold). `threshold_amount` is the level crossed (a recurring threshold has
    one per repetition); unique per (threshold, external subscription id, level), so a level is
    billed once, however many evaluations race."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey("invoicing.Invoice", on_delete=models.CASCADE, related_name="applied_usage_thresholds")
    usage_threshold = models.ForeignKey(UsageThreshold, on_delete=models.PROTECT, related_name="applied")
    external_subscription_id = models.CharField(max_length=255)
    threshold_amount = amount_field()
    lifetime_usage_amount = amount_field()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["usage_threshold", "external_subscription_id", "threshold_amount"],
                name="applied_usage_threshold_level_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.external_subscription_id} {self.threshold_amount}"
