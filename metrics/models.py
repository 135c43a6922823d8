"""What customers used: billable metrics and the raw usage events they aggregate."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from simple_history.models import HistoricalRecords

from billing_project.history import history_user


class AggregationType(models.TextChoices):
    COUNT = "count_agg", "Count"
    UNIQUE_COUNT = "unique_count_agg", "Count unique"
    LATEST = "latest_agg", "Latest"
    MAX = "max_agg", "Max"
    SUM = "sum_agg", "Sum"
    WEIGHTED_SUM = "weighted_sum_agg", "Weighted sum"


class RoundingFunction(models.TextChoices):
    ROUND = "round", "Round"
    CEIL = "ceil", "Ceil"
    FLOOR = "floor", "Floor"


class LiveManager(models.Manager):
    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(deleted_at__isnull=True)


class BillableMetric(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    code = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    aggregation_type = models.CharField(max_length=32, choices=AggregationType.choices)
    field_name = models.CharField(max_length=255, blank=True)
    recurring = models.BooleanField(default=False)
    weighted_interval = models.CharField(max_length=16, blank=True, choices=[("seconds", "seconds")])
    rounding_function = models.CharField(max_length=8, blank=True, choices=RoundingFunction.choices)
    rounding_precision = models.IntegerField(null=True, blank=True)
    expression = models.TextField(blank=True)
    # True while a live pay-in-advance charge prices this metric. Plans owns the truth (charges
    # live to the right) and keeps this copy with services.billable_metrics_pay_in_advance_sync;
    # ingestion reads it inside its INSERT statement to know which new events to announce, so
    # the hot path never asks plans (no extra round trip per batch).
    has_pay_in_advance_charges = models.BooleanField(default=False, editable=False)
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
                fields=["code"], condition=Q(deleted_at__isnull=True), name="metric_code_live_unique"
            )
        ]

    def __str__(self) -> str:
        return self.code

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The pay-in-advance flag is written only by its sync service (an UPDATE under the row's
        # lock): a full save of a metric loaded earlier (API, admin) must not write back a stale
        # copy of it.
        if not self._state.adding and kwargs.get("update_fields") is None and not kwargs.get("force_insert"):
            kwargs["update_fields"] = _METRIC_SAVED_FIELDS
        super().save(*args, **kwargs)


_METRIC_SAVED_FIELDS = [
    field.name
    for field in BillableMetric._meta.concrete_fields
    if not field.primary_key and field.name != "has_pay_in_advance_charges"
]


class BillableMetricFilter(models.Model):
    """A dimension of a metric: events carry `properties[key]` in `values`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    billable_metric = models.ForeignKey(BillableMetric, on_delete=models.CASCADE, related_name="filters")
    key = models.CharField(max_length=255)
    values = models.JSONField(default=list)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["billable_metric", "key"], name="metric_filter_key_unique")]

    def __str__(self) -> str:
        return f"{self.key}: {', '.join(map(str, self.values))}"


# An event's public id (`lago_id`) is derived from its bigint primary key rather than stored: a
# random uuid primary key would cost 16 more bytes per row and a random-order b-tree on the hottest
# table. The derived value is a well-formed UUID (version 8, "custom") that round-trips to the id.
_EVENT_UUID_HIGH = 0x7E11_6A7E_0000_8000  # fixed high 64 bits, version nibble 8
_EVENT_UUID_VARIANT = 0b10 << 62


_EVENT_UUID_PREFIX = str(uuid.UUID(int=_EVENT_UUID_HIGH << 64))[:19]  # "7e116a7e-0000-8000-"


def event_lago_id(event_id: int) -> str:
    # Formatted by hand: uuid.UUID() costs more than the rest of an event's answer.
    low = _EVENT_UUID_VARIANT | event_id
    return f"{_EVENT_UUID_PREFIX}{low >> 48:04x}-{low & 0xFFFF_FFFF_FFFF:012x}"


def event_id_from_lago_id(lago_id: str) -> int | None:
    try:
        value = uuid.UUID(str(lago_id)).int
    except ValueError:
        return None
    if value >> 64 != _EVENT_UUID_HIGH or (value >> 62) & 0b11 != 0b10:
        return None
    return value & ((1 << 62) - 1)


class Event(models.Model):
    """One usage event, stored once per (external subscription, transaction_id).

    Append-only: ingestion inserts with ON CONFLICT DO NOTHING and never updates a row, so the
    first copy of an event always wins. `code` and `external_subscription_id` are not foreign keys:
    an event for a metric or subscription that does not exist (yet) is kept and listed as unmatched.

    Indexes are the ingest cost (shared/PERFORMANCE.md), so there are exactly three:
    - the bigint primary key (the events list, newest received first, walks it backwards);
    - unique (transaction_id, external_subscription_id): the idempotency rule, with transaction_id
      first so that GET /events/{transaction_id} without a subscription is an index lookup too
      (ON CONFLICT infers a unique index by its set of columns, whatever their order);
    - (external_subscription_id, code, timestamp): every aggregation is a range scan of it.
    """

    id = models.BigAutoField(primary_key=True)
    transaction_id = models.CharField(max_length=255)
    external_subscription_id = models.CharField(max_length=255)
    code = models.CharField(max_length=255)
    # UTC, truncated to the millisecond at ingestion (Lago's precision).
    timestamp = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    precise_total_amount_cents = models.DecimalField(max_digits=40, decimal_places=15, null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["transaction_id", "external_subscription_id"], name="event_transaction_subscription_unique"
            )
        ]
        indexes = [
            models.Index(fields=["external_subscription_id", "code", "timestamp"], name="event_sub_code_timestamp"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.transaction_id} ({self.external_subscription_id})"

    @property
    def lago_id(self) -> str:
        return event_lago_id(self.id)


class UnmatchedEvent(Event):
    """Admin listing of events whose code names no live billable metric (see selectors)."""

    class Meta:
        proxy = True
        verbose_name = "unmatched event"
