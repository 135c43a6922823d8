"""Metrics in the admin: billable metrics (filters inline, soft delete through the service) and
events, read-only, with the unmatched-events listing."""

# The events table holds millions of rows: its lists never COUNT(*) the table (capped counts),
# search only by exact transaction or subscription id (index lookups), and filter codes from the
# metrics table rather than a DISTINCT over the events.

from __future__ import annotations

import copy
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from billing_project.admin import LiveFilter, ReadOnlyAdmin, add_error_codes

from . import selectors, services
from .models import BillableMetric, BillableMetricFilter, Event, UnmatchedEvent

_MESSAGES = {
    "value_is_mandatory": "This field is required.",
    "value_is_invalid": "This value is not valid here.",
    "value_already_exist": "A live metric already uses this code.",
    "not_compatible_with_aggregation_type": "Count, max and latest metrics cannot be recurring.",
}


class BillableMetricForm(forms.ModelForm):
    class Meta:
        model = BillableMetric
        fields = [
            "name",
            "code",
            "description",
            "aggregation_type",
            "field_name",
            "recurring",
            "weighted_interval",
            "rounding_function",
            "rounding_precision",
        ]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        metric = copy.copy(self.instance)
        for field in self.Meta.fields:
            if field in cleaned:
                setattr(
                    metric, field, cleaned[field] if cleaned[field] is not None or field == "rounding_precision" else ""
                )
        add_error_codes(self, services.billable_metric_validate(metric), _MESSAGES)
        return cleaned

    def validate_constraints(self) -> None:
        """Code uniqueness among live metrics is checked by clean(), in Lago's terms."""


class BillableMetricFilterInline(admin.TabularInline):
    model = BillableMetricFilter
    extra = 0
    fields = ["key", "values"]


@admin.register(BillableMetric)
class BillableMetricAdmin(admin.ModelAdmin):
    form = BillableMetricForm
    list_display = [
        "code",
        "name",
        "aggregation_type",
        "field_name",
        "recurring",
        "rounding",
        "created_at",
        "deleted_at",
    ]
    list_filter = [LiveFilter, "aggregation_type", "recurring"]
    search_fields = ["code", "name"]
    inlines = [BillableMetricFilterInline]
    readonly_fields = ["id", "created_at", "updated_at", "deleted_at"]
    actions = ["soft_delete"]

    @admin.display(description="rounding")
    def rounding(self, metric: BillableMetric) -> str:
        if not metric.rounding_function:
            return "-"
        return f"{metric.rounding_function}({metric.rounding_precision or 0})"

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # rows are soft-deleted, never removed
        return actions

    def delete_model(self, request: HttpRequest, obj: BillableMetric) -> None:
        if obj.deleted_at is None:
            services.billable_metric_delete(metric=obj)

    @admin.action(description="Delete selected metrics (soft: billed fees keep them)")
    def soft_delete(self, request: HttpRequest, queryset: QuerySet) -> None:
        deleted = 0
        for metric in queryset.filter(deleted_at__isnull=True):
            services.billable_metric_delete(metric=metric)
            deleted += 1
        self.message_user(request, f"{deleted} metric(s) deleted.", messages.SUCCESS)


class CappedCountPaginator(Paginator):
    """Counts at most 10,000 rows exactly, then PostgreSQL's estimate."""

    @cached_property
    def count(self) -> int:
        # The admin's changelist pages a queryset (Paginator is typed for any sliceable).
        return selectors.capped_count(cast(QuerySet, self.object_list))


class CodeFilter(admin.SimpleListFilter):
    """Codes from the metrics table (a DISTINCT over millions of events would be a full scan)."""

    title = "code"
    parameter_name = "code"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(code, code) for code in BillableMetric.live.order_by("code").values_list("code", flat=True)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(code=self.value()) if self.value() else queryset


class ReadOnlyEventAdmin(ReadOnlyAdmin):
    """Events are facts sent by the integrating product: never added, edited or deleted here."""

    list_display = ["transaction_id", "external_subscription_id", "code", "timestamp", "created_at"]
    list_filter = [CodeFilter, ("timestamp", admin.DateFieldListFilter)]
    search_fields = ["=transaction_id", "=external_subscription_id"]
    ordering = ["-id"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    fields = (
        "lago_id",
        "transaction_id",
        "external_subscription_id",
        "code",
        "timestamp",
        "properties",
        "precise_total_amount_cents",
        "created_at",
    )
    readonly_fields = fields


@admin.register(Event)
class EventAdmin(ReadOnlyEventAdmin):
    pass


@admin.register(UnmatchedEvent)
class UnmatchedEventAdmin(ReadOnlyEventAdmin):
    """Events whose code names no live metric (or, once plans answers
    `known_subscription_ids_requested`, whose subscription is unknown)."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return selectors.unmatched_events(queryset=UnmatchedEvent.objects.all())
