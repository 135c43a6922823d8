"""Metrics in the admin: billable metrics (filters inline, soft delete through the service) and
events, read-only, with the unmatched-events listing."""

# The events table holds millions of rows: its lists never COUNT(*) the table (capped counts),
# search only by exact transaction or subscription id (index lookups), and filter codes from the
# metrics table rather than a DISTINCT over the events.

from __future__ import annotations

import copy
import zoneinfo
from datetime import datetime
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.functional import cached_property

from billing_project.admin import LiveFilter, ReadOnlyAdmin, add_error_codes
from billing_project.local_time import current_display_timezone, display_timezone, format_instant
from customers.models import Organization

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


class InputFilter(admin.SimpleListFilter):
    """A free-text filter (a box, not a list of choices): exact values only, so each is an index
    lookup on the events table."""

    template = "admin/tollgate/input_filter.html"
    placeholder = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return []

    def has_output(self) -> bool:
        return True

    def choices(self, changelist: Any) -> Any:
        # One "choice": the box's current value and the other parameters to keep as hidden fields.
        others = {key: value for key, value in changelist.get_filters_params().items() if key != self.parameter_name}
        yield {
            "value": self.value() or "",
            "parameter_name": self.parameter_name,
            "placeholder": self.placeholder,
            "others": [(key, value[-1] if isinstance(value, list) else value) for key, value in others.items()],
            "clear_url": changelist.get_query_string(remove=[self.parameter_name]),
        }


class CustomerFilter(InputFilter):
    title = "customer (external id)"
    parameter_name = "customer"
    placeholder = "external customer id"

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = (self.value() or "").strip()
        return selectors.events_of_customer(queryset, value) if value else queryset


class SubscriptionFilter(InputFilter):
    title = "subscription (external id)"
    parameter_name = "subscription"
    placeholder = "external subscription id"

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = (self.value() or "").strip()
        return queryset.filter(external_subscription_id=value) if value else queryset


class TransactionFilter(InputFilter):
    title = "transaction id"
    parameter_name = "transaction"
    placeholder = "transaction id"

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = (self.value() or "").strip()
        return queryset.filter(transaction_id=value) if value else queryset


def _local_datetime(value: str) -> datetime | None:
    """`2026-05-01T10:00` (a datetime-local box) in the organization's timezone; None if unreadable."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        tz_name = current_display_timezone() or Organization.current().timezone or "UTC"
        parsed = parsed.replace(tzinfo=zoneinfo.ZoneInfo(tz_name))
    return parsed


class TimeFromFilter(InputFilter):
    title = "event time from (organization's timezone)"
    parameter_name = "time_from"
    placeholder = "2026-05-01T00:00"

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        instant = _local_datetime(self.value() or "")
        return queryset.filter(timestamp__gte=instant) if instant else queryset


class TimeToFilter(InputFilter):
    title = "event time before (organization's timezone)"
    parameter_name = "time_to"
    placeholder = "2026-06-01T00:00"

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        instant = _local_datetime(self.value() or "")
        return queryset.filter(timestamp__lt=instant) if instant else queryset


class ReadOnlyEventAdmin(ReadOnlyAdmin):
    """Events are facts sent by the integrating product: never added, edited or deleted here.
    Browsed by customer, subscription, code, transaction id and time (each an index lookup or
    range), newest received first."""

    list_display = ["transaction_id", "external_subscription_id", "code", "event_time", "received"]
    list_filter = [
        CustomerFilter,
        SubscriptionFilter,
        TransactionFilter,
        CodeFilter,
        TimeFromFilter,
        TimeToFilter,
        ("timestamp", admin.DateFieldListFilter),
    ]
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

    @admin.display(description="event time", ordering="timestamp")
    def event_time(self, event: Event) -> str:
        return format_instant(event.timestamp)

    @admin.display(description="received", ordering="id")
    def received(self, event: Event) -> str:
        return format_instant(event.created_at)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # The organization's zone read once for the page, never once per row.
        with display_timezone(Organization.current().timezone):
            response = super().changelist_view(request, extra_context)
            if isinstance(response, TemplateResponse):
                response.render()
        return response


@admin.register(Event)
class EventAdmin(ReadOnlyEventAdmin):
    pass


@admin.register(UnmatchedEvent)
class UnmatchedEventAdmin(ReadOnlyEventAdmin):
    """Events whose code names no live metric, or whose subscription is unknown (plans answers
    `known_subscription_ids_requested`), each with the reason in words."""

    list_display = [*ReadOnlyEventAdmin.list_display, "reason"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return selectors.with_unmatched_reasons(selectors.unmatched_events(queryset=UnmatchedEvent.objects.all()))

    @admin.display(description="why unmatched")
    def reason(self, event: Event) -> str:
        return selectors.unmatched_reason(event)
