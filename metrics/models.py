"""What customers used: billable metrics and the raw usage events they aggregate."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = models.Manager()
    live = LiveManager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["code"], condition=Q(deleted_at__isnull=True), name="metric_code_live_unique"
            )
        ]

    def __str__(self) -> str:
        return self.code


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
