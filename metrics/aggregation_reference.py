"""The Python reference of metrics.aggregation's semantics: what runs on SQLite (the demo
database) and what the tests compare the SQL against. Same inputs, same results, row for row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from .aggregation import (
    _ZERO,
    AggregationResult,
    Filters,
    GroupKeys,
    ProratedAggregationResult,
    ProratedEvent,
    ProratedPeriod,
    _ceil_prorated,
    apply_rounding,
    group_value,
)
from .models import AggregationType, BillableMetric, Event
from .selectors import event_numeric_value, event_scalar_text, event_text_value


def _matches(properties: Any, filters: Filters | None, exclude_filters: Sequence[Filters]) -> bool:
    def all_match(conditions: Filters) -> bool:
        return all(event_text_value(properties, key) in {str(v) for v in values} for key, values in conditions.items())

    return (not filters or all_match(filters)) and not any(all_match(x) for x in exclude_filters)


def _python_value(metric: BillableMetric, properties: Any) -> Any:
    kind = metric.aggregation_type
    if kind == AggregationType.COUNT:
        return Decimal(1)
    if kind == AggregationType.UNIQUE_COUNT:
        return event_scalar_text(properties, metric.field_name)
    return event_numeric_value(properties, metric.field_name)


@dataclass
class _Point:
    timestamp: datetime
    id: int
    value: Any
    precise: Decimal | None
    removes: bool


def _aggregate_in_python(
    metric: BillableMetric,
    mode: str,
    periods: Sequence[tuple[str, datetime, datetime]],
    group_key: GroupKeys | None,
    filters: Filters | None,
    exclude_filters: Sequence[Filters],
    with_event_values: bool,
) -> dict[str | None, AggregationResult]:
    buckets: dict[str | None, tuple[datetime, datetime, list[_Point]]] = {}
    for sub, start, end in periods:
        rows = Event.objects.filter(code=metric.code, external_subscription_id=sub, timestamp__lt=end).values_list(
            "id", "timestamp", "properties", "precise_total_amount_cents"
        )
        for event_id, timestamp, properties, precise in rows:
            if not _matches(properties, filters, exclude_filters):
                continue
            value = _python_value(metric, properties)
            if value is None:
                continue
            key = sub if mode == "per_subscription" else group_value(properties, group_key)
            removes = isinstance(properties, dict) and properties.get("operation_type") == "remove"
            point = _Point(timestamp, event_id, value, None if precise is None else Decimal(precise), removes)
            buckets.setdefault(key, (start, end, []))[2].append(point)
    results: dict[str | None, AggregationResult] = {}
    for key, (start, end, points) in buckets.items():
        points.sort(key=lambda point: (point.timestamp, point.id))
        in_period = [point for point in points if point.timestamp >= start]
        units = _python_units(metric, start, end, points, in_period)
        if units is None:
            continue
        values: tuple[Decimal, ...] | None = None
        if with_event_values:
            unit = metric.aggregation_type == AggregationType.UNIQUE_COUNT
            values = tuple(Decimal(1) if unit else point.value for point in in_period)
        results[key] = AggregationResult(
            units=apply_rounding(metric, units),
            events_count=len(in_period),
            event_values=values,
            precise_total_amount_cents=sum((p.precise for p in in_period if p.precise is not None), _ZERO),
        )
    return results


def _python_units(
    metric: BillableMetric, start: datetime, end: datetime, points: list[_Point], in_period: list[_Point]
) -> Decimal | None:
    """None: no row for this key (as the SQL answers none)."""
    kind = metric.aggregation_type
    earlier = [point for point in points if point.timestamp < start]
    if kind == AggregationType.UNIQUE_COUNT:
        scope = points if metric.recurring else in_period
        if not scope:
            return None
        last_removes: dict[Any, bool] = {}
        for point in scope:  # sorted by (timestamp, id): the last operation wins
            last_removes[point.value] = point.removes
        return Decimal(sum(1 for removes in last_removes.values() if not removes))
    if kind == AggregationType.WEIGHTED_SUM:
        running = sum((point.value for point in earlier), _ZERO) if metric.recurring else _ZERO
        if not in_period and not (metric.recurring and earlier):
            return None
        total_seconds = Decimal(str((end - start).total_seconds()))
        if total_seconds == 0:
            return _ZERO
        integral = _ZERO
        cursor = start
        for point in in_period:
            integral += running * Decimal(str((point.timestamp - cursor).total_seconds()))
            running += point.value
            cursor = point.timestamp
        integral += running * Decimal(str((end - cursor).total_seconds()))
        return integral / total_seconds
    if not in_period:
        return None
    values: list[Decimal] = [point.value for point in in_period]  # numeric metrics: Decimal values
    if kind == AggregationType.COUNT:
        return Decimal(len(values))
    if kind == AggregationType.SUM:
        return sum(values, _ZERO)
    if kind == AggregationType.MAX:
        return max(values)
    if kind == AggregationType.LATEST:
        return values[-1]
    raise ValueError(f"unknown aggregation type {kind!r}")


def _prorated_in_python(
    metric: BillableMetric,
    mode: str,
    periods: Sequence[ProratedPeriod],
    group_key: GroupKeys | None,
    filters: Filters | None,
    exclude_filters: Sequence[Filters],
    with_events: bool,
) -> dict[str | None, ProratedAggregationResult]:
    """The same semantics on SQLite (the demo database); also the tests' reference."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    buckets: dict[str | None, tuple[ProratedPeriod, list[_Point]]] = {}
    for period in periods:
        rows = Event.objects.filter(
            code=metric.code, external_subscription_id=period.external_subscription_id, timestamp__lt=period.to_datetime
        ).values_list("id", "timestamp", "properties", "precise_total_amount_cents")
        for event_id, timestamp, properties, precise in rows:
            if not _matches(properties, filters, exclude_filters):
                continue
            value = _python_value(metric, properties)
            if value is None:
                continue
            if mode == "per_subscription":
                key: str | None = period.external_subscription_id
            else:
                key = group_value(properties, group_key)
            removes = isinstance(properties, dict) and properties.get("operation_type") == "remove"
            point = _Point(timestamp, event_id, value, None if precise is None else Decimal(precise), removes)
            buckets.setdefault(key, (period, []))[1].append(point)

    results: dict[str | None, ProratedAggregationResult] = {}
    for key, (period, points) in buckets.items():
        zone = ZoneInfo(period.timezone or "UTC")
        start, end, full_days = period.from_datetime, period.to_datetime, period.full_days
        first_day = start.astimezone(zone).date()
        last_day = (end - timedelta(microseconds=1)).astimezone(zone).date()

        def day(instant: datetime, zone: ZoneInfo = zone) -> Any:
            return instant.astimezone(zone).date()

        points.sort(key=lambda point: (point.timestamp, point.id))
        # (timestamp, full units, local days) of each step; carried-in steps before `start`.
        steps: list[tuple[datetime, Decimal, int]] = []
        if metric.aggregation_type == AggregationType.SUM:
            for point in points:
                days = max((last_day - day(max(point.timestamp, start))).days + 1, 0)
                steps.append((point.timestamp, point.value, days))
        else:
            by_value: dict[Any, list[tuple[datetime, int, int]]] = {}
            active: dict[Any, bool] = {}
            for point in points:
                was_active = active.get(point.value, False)
                if point.removes and was_active:
                    by_value.setdefault(point.value, []).append((point.timestamp, -1, point.id))
                elif not point.removes and not was_active:
                    by_value.setdefault(point.value, []).append((point.timestamp, 1, point.id))
                active[point.value] = not point.removes
            unsorted = []
            for transitions in by_value.values():
                for index, (timestamp, delta, event_id) in enumerate(transitions):
                    days = 0
                    removed_at = transitions[index + 1][0] if index + 1 < len(transitions) else None
                    previous_at = transitions[index - 1][0] if index else None
                    if delta == 1 and not (removed_at is not None and removed_at < start):
                        last = day(removed_at) if removed_at is not None else last_day
                        days = (last - max(day(timestamp), first_day)).days + 1
                        if previous_at is not None and previous_at >= start and day(previous_at) == day(timestamp):
                            days -= 1
                        days = max(days, 0)
                    unsorted.append((timestamp, event_id, Decimal(delta), days))
            steps = [(ts, units, days) for ts, _, units, days in sorted(unsorted, key=lambda s: (s[0], s[1]))]
        in_period = [point for point in points if point.timestamp >= start]
        carried = [step for step in steps if step[0] < start]
        units = sum((units for _, units, _ in steps), _ZERO)
        prorated = sum((units * days for _, units, days in steps), _ZERO) / full_days
        events: tuple[ProratedEvent, ...] | None = None
        if with_events:
            listed = []
            if carried:
                listed.append(
                    ProratedEvent(
                        start,
                        sum((u for _, u, _ in carried), _ZERO),
                        sum((u * d for _, u, d in carried), _ZERO) / full_days,
                    )
                )
            listed += [ProratedEvent(ts, u, u * d / full_days) for ts, u, d in steps if ts >= start]
            events = tuple(listed)
        results[key] = ProratedAggregationResult(
            units=apply_rounding(metric, units),
            prorated_units=_ceil_prorated(prorated),
            events_count=len(in_period),
            events=events,
            precise_total_amount_cents=sum((p.precise for p in in_period if p.precise is not None), _ZERO),
        )
    return results
