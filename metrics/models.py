"""What customers used: billable metrics and the raw usage events they aggregate."""

from __future__ import annotations

import uuid
from decimal import Decimal
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
    # The parsed `expression` (metrics.expressions' JSON tree), null without one. Ingestion's
    # INSERT evaluates it on PostgreSQL (tollgate_expression_text) into properties[field_name].
    expression_ast = models.JSONField(null=True, blank=True, editable=False)
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


# --- Usage rollups (metrics.rollups folds them, metrics.rollup_reads reads them) ------------------


class ExactNumericField(models.Field):
    """PostgreSQL `numeric` without precision or scale: a sum keeps every digit and the scale of
    its terms, so a sum of bucket sums is the very number (and text) a sum over the events gives."""

    description = "Exact numeric"

    def db_type(self, connection: Any) -> str:
        return "numeric"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return value if value is None or isinstance(value, Decimal) else Decimal(str(value))


class UsageRollup(models.Model):
    """One closed hour of one subscription's events of one metric code, for one combination of
    the values the metric's filters and groups read (`dims`: {key: properties ->> key}).

    Only events whose value the metric counts are folded (a skipped value changes no aggregate).
    Which columns are filled depends on the aggregation type the bucket was folded for (the
    watermark's `definition`): count/sum/max/weighted sum/latest read what they need."""

    id = models.BigAutoField(primary_key=True)
    external_subscription_id = models.CharField(max_length=255)
    code = models.CharField(max_length=255)
    bucket_start = models.DateTimeField()
    dims = models.JSONField(default=dict)
    # md5 of dims' text: keys the unique index whatever the values' length.
    dims_hash = models.UUIDField()
    events_count = models.BigIntegerField()
    value_sum = ExactNumericField(null=True)
    value_max = ExactNumericField(null=True)
    # sum(value x epoch seconds of its timestamp): a weighted sum's integral is t x sum - this.
    value_time_sum = ExactNumericField(null=True)
    precise_sum = ExactNumericField(null=True)
    latest_timestamp = models.DateTimeField(null=True)
    latest_event_id = models.BigIntegerField(null=True)
    latest_value = ExactNumericField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["external_subscription_id", "code", "bucket_start", "dims_hash"], name="usage_rollup_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.external_subscription_id} {self.bucket_start:%Y-%m-%d %H}h {self.dims}"


class UsageRollupValue(models.Model):
    """Unique counts, exactly: per (subscription, code, dims, value) the first time it was seen
    and its last operation (timestamp, event id: the tie-break, add or remove) among the folded
    events. Merged by max, so folding the same events twice, or late ones later, is harmless."""

    id = models.BigAutoField(primary_key=True)
    external_subscription_id = models.CharField(max_length=255)
    code = models.CharField(max_length=255)
    dims = models.JSONField(default=dict)
    dims_hash = models.UUIDField()
    value = models.TextField()
    value_hash = models.UUIDField()
    first_timestamp = models.DateTimeField()
    last_timestamp = models.DateTimeField()
    last_event_id = models.BigIntegerField()
    last_removes = models.BooleanField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["external_subscription_id", "code", "dims_hash", "value_hash"],
                name="usage_rollup_value_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.external_subscription_id} {self.value!r}"


class UsageWatermark(models.Model):
    """How far the rollups of one (subscription, code) go: every closed hour before
    `folded_until` is folded (or marked dirty). `pending_until` is published before a fold
    reads the events, so that an event written meanwhile below it marks its hour dirty.
    `definition` is what the buckets were folded for (aggregation type, field, dims keys); null
    when an event was deleted or changed: the rollups are then ignored and rebuilt."""

    id = models.BigAutoField(primary_key=True)
    external_subscription_id = models.CharField(max_length=255)
    code = models.CharField(max_length=255)
    folded_until = models.DateTimeField(null=True)
    pending_until = models.DateTimeField(null=True)
    definition = models.JSONField(null=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["external_subscription_id", "code"], name="usage_watermark_unique")
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.external_subscription_id} folded until {self.folded_until}"


class UsageRollupDirty(models.Model):
    """An hour below the watermark that received an event after it was folded: the reads take
    its raw events, the next fold refolds it. `generation` grows with every late write."""

    id = models.BigAutoField(primary_key=True)
    external_subscription_id = models.CharField(max_length=255)
    code = models.CharField(max_length=255)
    bucket_start = models.DateTimeField()
    generation = models.BigIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["external_subscription_id", "code", "bucket_start"], name="usage_rollup_dirty_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.external_subscription_id} dirty {self.bucket_start}"


class UsageFoldCursor(models.Model):
    """The fold's discovery cursor: events with a greater id may belong to (subscription, code)
    pairs without a watermark yet. One row (name "events")."""

    name = models.CharField(max_length=32, primary_key=True)
    last_event_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}: {self.last_event_id}"
