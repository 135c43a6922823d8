"""Reads over events: the API's list and lookups, unmatched events, events an aggregation skipped."""

# Counting millions of rows is the expensive part of a paginated list, not the page itself, so
# `capped_count` counts exactly up to CAPPED_COUNT_LIMIT rows and answers PostgreSQL's planner
# estimate beyond that (documented in the API: meta.total_count is exact up to 10,000).

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import Combinable

from .models import AggregationType, BillableMetric, Event
from .signals import known_subscription_ids_requested

CAPPED_COUNT_LIMIT = 10_000

# What the aggregation counts as a number (PostgreSQL side): a JSON number, or a string holding a
# plain decimal number. Kept in one place so the aggregation and the invalid-events list agree.
NUMERIC_TEXT_PATTERN = r"^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$"
_NUMERIC_TEXT = re.compile(NUMERIC_TEXT_PATTERN.replace("\\s", "[ \\t\\n\\r\\f\\v]"))


def events_list(
    *,
    code: str | None = None,
    external_subscription_id: str | None = None,
    timestamp_from: datetime | None = None,
    timestamp_to: datetime | None = None,
) -> QuerySet[Event]:
    """Newest received first (the primary key: a backward index scan, no sort), as Lago's
    ClickHouse store orders by ingestion time. Both timestamp bounds are inclusive (as Lago)."""
    queryset = Event.objects.all()
    if code:
        queryset = queryset.filter(code=code)
    if external_subscription_id:
        queryset = queryset.filter(external_subscription_id=external_subscription_id)
    if timestamp_from is not None:
        queryset = queryset.filter(timestamp__gte=timestamp_from)
    if timestamp_to is not None:
        queryset = queryset.filter(timestamp__lte=timestamp_to)
    return queryset.order_by("-id")


def event_find(*, transaction_id: str, external_subscription_id: str | None = None) -> Event | None:
    """An event by transaction_id; with several subscriptions sharing it and none named, the
    first stored one (as Lago)."""
    queryset = Event.objects.filter(transaction_id=transaction_id)
    if external_subscription_id:
        queryset = queryset.filter(external_subscription_id=external_subscription_id)
    return queryset.order_by("id").first()


def capped_count(queryset: QuerySet, limit: int = CAPPED_COUNT_LIMIT) -> int:
    """Exact count up to `limit`; beyond it, the planner's estimate (never below limit + 1)."""
    exact = queryset.order_by()[: limit + 1].count()
    if exact <= limit or connection.vendor != "postgresql":
        return exact if exact <= limit else queryset.count()
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    return max(estimate, limit + 1)


def _known_subscription_ids() -> list[Iterable[str]]:
    return [ids for _, ids in known_subscription_ids_requested.send(sender=Event) if ids is not None]


def customer_subscription_ids(external_customer_id: str) -> list[Iterable[str] | QuerySet]:
    """The external subscription ids of one customer, from the apps that know subscriptions
    (plans answers `known_subscription_ids_requested` with `external_customer_id`)."""
    return [
        ids
        for _, ids in known_subscription_ids_requested.send(sender=Event, external_customer_id=external_customer_id)
        if ids is not None
    ]


def events_of_customer(queryset: QuerySet[Event], external_customer_id: str) -> QuerySet[Event]:
    """`queryset` narrowed to the events of one customer's subscriptions (none without a source)."""
    sources = customer_subscription_ids(external_customer_id)
    if not sources:
        return queryset.none()
    condition = Q()
    for ids in sources:
        condition |= Q(external_subscription_id__in=ids if isinstance(ids, QuerySet) else list(ids))
    return queryset.filter(condition)


UNKNOWN_METRIC = "No live billable metric has this code."
UNKNOWN_SUBSCRIPTION = "No subscription has this external id."


def with_unmatched_reasons(queryset: QuerySet[Event]) -> QuerySet[Event]:
    """Annotate `metric_known` and `subscription_known` (EXISTS subqueries, evaluated per listed
    row only), from which `unmatched_reason` words the reason."""
    annotated = queryset.annotate(metric_known=Exists(BillableMetric.live.filter(code=OuterRef("code"))))
    for ids in _known_subscription_ids():
        if isinstance(ids, QuerySet):
            field = (list(ids.query.values_select) or ["external_id"])[0]
            return annotated.annotate(
                subscription_known=Exists(ids.filter(**{field: OuterRef("external_subscription_id")}))
            )
    return annotated


def unmatched_reason(event: Event) -> str:
    reasons = []
    if getattr(event, "metric_known", True) is False:
        reasons.append(UNKNOWN_METRIC)
    if getattr(event, "subscription_known", True) is False:
        reasons.append(UNKNOWN_SUBSCRIPTION)
    return " ".join(reasons) or "-"


def unmatched_events(
    *, known_subscription_ids: Iterable[str] | QuerySet | None = None, queryset: QuerySet | None = None
) -> QuerySet[Event]:
    """Events whose code names no live billable metric, or whose subscription is unknown.

    Subscriptions live to the right (plans): pass their external ids (a list, or a values_list
    queryset of one field), or let the apps connected to `known_subscription_ids_requested`
    provide them. Without either, only codes are checked. `queryset` narrows the events (the
    admin passes its proxy model's).
    """
    condition: Q | Combinable = ~Exists(BillableMetric.live.filter(code=OuterRef("code")))
    sources = [known_subscription_ids] if known_subscription_ids is not None else _known_subscription_ids()
    for ids in sources:
        if isinstance(ids, QuerySet):
            field = (list(ids.query.values_select) or ["external_id"])[0]
            condition |= ~Exists(ids.filter(**{field: OuterRef("external_subscription_id")}))
        else:
            condition |= ~Q(external_subscription_id__in=list(ids))
    return (Event.objects.all() if queryset is None else queryset).filter(condition).order_by("-id")


def invalid_events(
    metric: BillableMetric,
    *,
    external_subscription_ids: Sequence[str] | None = None,
    from_datetime: datetime | None = None,
    to_datetime: datetime | None = None,
) -> QuerySet[Event]:
    """Events of `metric` that its aggregation skips: the field is missing (or null), or, for the
    numeric aggregations, not a number; for unique_count_agg, not a scalar. count_agg skips nothing."""
    queryset = Event.objects.filter(code=metric.code)
    if external_subscription_ids is not None:
        queryset = queryset.filter(external_subscription_id__in=list(external_subscription_ids))
    if from_datetime is not None:
        queryset = queryset.filter(timestamp__gte=from_datetime)
    if to_datetime is not None:
        queryset = queryset.filter(timestamp__lt=to_datetime)
    if metric.aggregation_type == AggregationType.COUNT:
        return queryset.none()
    numeric = metric.aggregation_type != AggregationType.UNIQUE_COUNT
    if connection.vendor == "postgresql":
        field = metric.field_name
        if numeric:
            where = (
                "NOT COALESCE(jsonb_typeof(properties -> %s) = 'number' OR "
                "(jsonb_typeof(properties -> %s) = 'string' AND (properties ->> %s) ~ %s), false)"
            )
            params = [field, field, field, NUMERIC_TEXT_PATTERN]
        else:
            where = "NOT COALESCE(jsonb_typeof(properties -> %s) IN ('string', 'number', 'boolean'), false)"
            params = [field]
        return queryset.extra(where=[where], params=params).order_by("-id")  # noqa: S610 - parameters only
    # SQLite (demo database): decide in Python, then answer a queryset like PostgreSQL does.
    value_of = event_numeric_value if numeric else event_scalar_text
    skipped = [
        event_id
        for event_id, properties in queryset.values_list("id", "properties")
        if value_of(properties, metric.field_name) is None
    ]
    return Event.objects.filter(id__in=skipped).order_by("-id")


def event_text_value(properties: object, field: str) -> str | None:
    """properties[field] as PostgreSQL's ->> reads it; None when missing or null."""
    if not isinstance(properties, dict):
        return None
    value = properties.get(field)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def event_scalar_text(properties: object, field: str) -> str | None:
    """properties[field] as unique_count_agg counts it: a string, number or boolean, as text."""
    if isinstance(properties, dict) and isinstance(properties.get(field), (str, int, float)):
        return event_text_value(properties, field)
    return None


def event_numeric_value(properties: object, field: str) -> Decimal | None:
    """properties[field] as a number, or None when the aggregation must skip it."""
    if not isinstance(properties, dict):
        return None
    value = properties.get(field)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str) and _NUMERIC_TEXT.match(value):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None
