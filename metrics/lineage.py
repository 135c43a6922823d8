"""Which events an aggregation counts: the SQL of the event ids behind a scope's units.

The same builder as metrics.aggregation (same filters, exclusions and skipped values), so the
events listed are exactly those the units were computed from; invoicing writes them per fee."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .aggregation import Filters, _SqlBuilder
from .models import AggregationType, BillableMetric


def carries_in(metric: BillableMetric, *, prorated: bool) -> bool:
    """Do the units of a period depend on the events before it? A recurring unique count or
    weighted sum (values persist, totals carry in), and a prorated recurring charge."""
    if not metric.recurring:
        return False
    return prorated or metric.aggregation_type in (AggregationType.UNIQUE_COUNT, AggregationType.WEIGHTED_SUM)


def counted_events_sql(
    metric: BillableMetric,
    *,
    external_subscription_id: str,
    from_datetime: datetime,
    to_datetime: datetime,
    filters: Filters | None,
    exclude_filters: Sequence[Filters],
    group: Mapping[str, str | None] | None,
    carried_in: bool,
    prefix: str,
) -> tuple[str, dict[str, Any]]:
    """`SELECT id, in_period FROM ...`: the events of one subscription that aggregating `metric` over
    [from, to) counts (every event before `to` when `carried_in`), within a group's values (a key
    whose value is None: events without it). Parameter names start with `prefix`, so that many
    such selects can share one statement. `in_period` tells the period's own events from
    those carried in."""
    builder = _builder(metric, "shared", filters, exclude_filters, group)
    builder.params.update(subs=[external_subscription_id], f=from_datetime, t=to_datetime)
    # in_period: the event is one of the period's own (those a result's events_count counts).
    return _prefixed(builder, "id", carried_in, prefix)


def _builder(
    metric: BillableMetric,
    mode: str,
    filters: Filters | None,
    exclude_filters: Sequence[Filters],
    group: Mapping[str, str | None] | None,
) -> _SqlBuilder:
    """The aggregation's builder for `metric`, narrowed to a group's values."""
    builder = _SqlBuilder(metric, mode, None, filters, exclude_filters, False)
    for n, (key, value) in enumerate((group or {}).items()):
        builder.params[f"lg{n}"], builder.params[f"lgv{n}"] = key, value
        builder.filter_sql += f" AND (e.properties ->> %(lg{n})s) IS NOT DISTINCT FROM %(lgv{n})s::text"
    return builder


def _prefixed(builder: _SqlBuilder, columns: str, carried_in: bool, prefix: str) -> tuple[str, dict[str, Any]]:
    """SELECT `columns`, in_period over the builder's counted events, its parameters renamed."""
    source = builder.source("until_end" if carried_in else "period")
    sql = f"SELECT {columns}, ts >= f AS in_period FROM ({source}) counted WHERE v IS NOT NULL"
    return sql.replace("%(", f"%({prefix}"), {f"{prefix}{key}": value for key, value in builder.params.items()}


def counted_events_many_sql(
    metric: BillableMetric,
    *,
    periods: Sequence[tuple[str, datetime, datetime]],
    filters: Filters | None,
    exclude_filters: Sequence[Filters],
    group: Mapping[str, str | None] | None,
    carried_in: bool,
    prefix: str,
) -> tuple[str, dict[str, Any]]:
    """counted_events_sql of several subscriptions, each over its own [from, to) (`periods`:
    (external subscription id, from, to), each subscription once): `SELECT sub, id, in_period`,
    one join of the periods with the events instead of a select per subscription."""
    if len({sub for sub, _, _ in periods}) != len(periods):
        raise ValueError("counted_events_many_sql: a subscription once")
    builder = _builder(metric, "per_subscription", filters, exclude_filters, group)
    builder.params.update(
        subs=[sub for sub, _, _ in periods], fs=[f for _, f, _ in periods], ts=[t for _, _, t in periods]
    )
    return _prefixed(builder, "k AS sub, id", carried_in, prefix)
