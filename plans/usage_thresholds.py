"""Usage thresholds of progressive billing (Lago's usage_thresholds, premium in Lago): when a
subscription's lifetime usage reaches one, invoicing bills the usage of the period so far.

A plan holds its thresholds; at most one is recurring (it repeats every `amount` above the
highest fixed one). Amounts are major units of the plan's currency. Replaced as a whole list
by the API (`plan_usage_thresholds_set`); replaced rows are soft-deleted so the invoices that
applied them keep them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from billing_project.fields import amount_field
from billing_project.money import from_cents

from .errors import PlansError

MAX_THRESHOLDS = 100


class UsageThreshold(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    plan = models.ForeignKey("plans.Plan", on_delete=models.CASCADE, related_name="usage_thresholds")
    amount = amount_field()
    threshold_display_name = models.CharField(max_length=255, blank=True)
    recurring = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "plans"
        ordering = ["recurring", "amount", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan"],
                condition=Q(recurring=True, deleted_at__isnull=True),
                name="usage_threshold_one_recurring_per_plan",
            ),
            models.UniqueConstraint(
                fields=["plan", "amount"],
                condition=Q(recurring=False, deleted_at__isnull=True),
                name="usage_threshold_amount_unique_per_plan",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="usage_threshold_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.amount}{' (recurring)' if self.recurring else ''}"


def live_thresholds(plan: Any) -> list[UsageThreshold]:
    return list(UsageThreshold.objects.filter(plan=plan, deleted_at__isnull=True).order_by("recurring", "amount"))


def _parse(items: Any, currency: str) -> list[UsageThreshold]:
    """Lago's checks: amounts are positive integers of cents, no two fixed ones alike, one
    recurring at most."""
    if not isinstance(items, Sequence) or isinstance(items, str) or len(items) > MAX_THRESHOLDS:
        raise PlansError.field("usage_thresholds", "value_is_invalid")
    rows = []
    for item in items:
        if not isinstance(item, Mapping):
            raise PlansError.field("usage_thresholds", "value_is_invalid")
        cents = item.get("amount_cents")
        if isinstance(cents, bool) or not isinstance(cents, int) or cents <= 0 or cents > 10**15:
            raise PlansError.field("usage_thresholds:amount_cents", "value_is_invalid")
        name = item.get("threshold_display_name") or ""
        if not isinstance(name, str) or len(name) > 255:
            raise PlansError.field("usage_thresholds:threshold_display_name", "value_is_invalid")
        recurring = item.get("recurring") or False
        if not isinstance(recurring, bool):
            raise PlansError.field("usage_thresholds:recurring", "value_is_invalid")
        rows.append(
            UsageThreshold(
                amount=from_cents(Decimal(cents), currency), threshold_display_name=name, recurring=recurring
            )
        )
    if sum(row.recurring for row in rows) > 1:
        raise PlansError.field("usage_thresholds", "multiple_recurring_thresholds")
    fixed = [row.amount for row in rows if not row.recurring]
    if len(set(fixed)) != len(fixed):
        raise PlansError.field("usage_thresholds", "duplicated_values")
    return rows


@transaction.atomic
def plan_usage_thresholds_set(*, plan: Any, items: Any) -> list[UsageThreshold]:
    """Replace the plan's thresholds with `items` (Lago's usage_thresholds objects)."""
    rows = _parse(items, str(plan.amount.currency))
    UsageThreshold.objects.filter(plan=plan, deleted_at__isnull=True).update(deleted_at=timezone.now())
    for row in rows:
        row.plan = plan
    return UsageThreshold.objects.bulk_create(rows)
