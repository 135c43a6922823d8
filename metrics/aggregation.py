"""Billable metric aggregation: events -> units for a subscription and period, computed by SQL."""

# Each call is ONE query on PostgreSQL (the events never travel to Python, except the per-event
# values a percentage charge asks for, which come back as one array column of that same query).
# Every query is a range scan of the (external_subscription_id, code, timestamp) index.
#
# Semantics (periods are [from, to), aware UTC):
# - count_agg: matching events. sum_agg / max_agg: of properties[field_name]. latest_agg: the value of
#   the event with the greatest timestamp (ties: the one stored last). Empty period: 0.
# - unique_count_agg: distinct values of properties[field_name] whose last operation is an add
#   (properties.operation_type "remove" removes a value; anything else adds). Recurring: values
#   persist across periods (every event before `to` counts); otherwise only events of the period.
# - weighted_sum_agg: events carry deltas; the running total is integrated over time and divided by
#   the period's length (a time-weighted average). Recurring: the running total of all events before
#   `from` is carried in; otherwise the period starts at 0.
# - A value that is missing, null or not a number (for sum, max, latest and weighted sum), or not a
#   scalar (unique count), skips its event entirely (units, events_count, precise_total_amount_cents);
#   selectors.invalid_events lists such events. It never fails the query: the numeric cast is guarded
#   by jsonb_typeof and a regular expression.
# - Rounding (the metric's rounding_function and rounding_precision) applies to the units at the end.
#
# The generic-plan trap (shared/PERFORMANCE.md): these queries' selectivity varies by subscription,
# so they must be planned with their parameters. Settings turn psycopg's server-side preparation off
# (prepare_threshold=None) and Django binds parameters client-side; tests/metrics check both.
#
# On SQLite (the demo database) the same semantics are computed in Python (aggregation_reference).

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal
from typing import Any

from django.db import connection

from .models import AggregationType, BillableMetric, Event
from .rollup_reads import rollup_aggregate
from .selectors import NUMERIC_TEXT_PATTERN, event_text_value


@dataclass(frozen=True)
class AggregationResult:
    units: Decimal  # after the metric's rounding (rounding_function/precision)
    events_count: int
    # Per-event numeric values ordered by timestamp, only when with_event_values=True
    # (percentage charges). count and unique count give 1 per event, weighted sum its delta.
    event_values: tuple[Decimal, ...] | None = None
    precise_total_amount_cents: Decimal = Decimal(0)  # sum over matching events (dynamic charges)


Filters = Mapping[str, Sequence[str]]
_ZERO = Decimal(0)
_ROUNDING = {"round": ROUND_HALF_UP, "ceil": ROUND_CEILING, "floor": ROUND_FLOOR}
_WIDE = Context(prec=80)


def apply_rounding(metric: BillableMetric, units: Decimal) -> Decimal:
    """The metric's rounding: round (half-up), ceil or floor to rounding_precision decimals
    (negative: tens, hundreds...). 123.456: round(2) 123.46, ceil() 124, floor(-2) 100."""
    mode = _ROUNDING.get(metric.rounding_function or "")
    if mode is None:
        return units
    precision = metric.rounding_precision or 0
    rounded = units.quantize(Decimal(1).scaleb(-precision), rounding=mode, context=_WIDE)
    # 1E+2 reads badly on an invoice: bring a negative precision back to a plain integer.
    return rounded.quantize(Decimal(1), context=_WIDE) if precision < 0 else rounded


# One grouping key, or several (grouped by every one of them).
GroupKeys = str | Sequence[str]


def group_value(properties: Any, keys: GroupKeys | None) -> str | None:
    """An event's group under `keys`, as the SQL computes it: the key's text value (None
    without it), for several keys the JSON array of their values; "" when not grouped."""
    if not keys:
        return ""
    if isinstance(keys, str):
        return event_text_value(properties, keys)
    return json.dumps([event_text_value(properties, key) for key in keys], ensure_ascii=False)


def group_values(key: str | None, keys: GroupKeys) -> dict[str, str | None]:
    """A result's group key read back as {grouping key: value} (`group_value`'s inverse)."""
    if isinstance(keys, str):
        return {keys: key}
    values = json.loads(key) if key else [None] * len(keys)
    return dict(zip(keys, values, strict=True))


def _empty(with_event_values: bool) -> AggregationResult:
    return AggregationResult(units=_ZERO, events_count=0, event_values=() if with_event_values else None)


def aggregate(
    metric: BillableMetric,
    *,
    external_subscription_ids: Sequence[str],
    from_datetime: datetime,
    to_datetime: datetime,
    filters: Filters | None = None,
    exclude_filters: Sequence[Filters] = (),
    with_event_values: bool = False,
) -> AggregationResult:
    """Units of `metric` over [from, to) for the events of these external subscriptions.
    An event counts if, for every key of `filters`, properties[key] is one of its values, and it
    matches none of `exclude_filters` (each matched the same way: all of its keys)."""
    rows = _run(
        metric,
        mode="shared",
        subscription_ids=external_subscription_ids,
        from_datetime=from_datetime,
        to_datetime=to_datetime,
        group_key=None,
        filters=filters,
        exclude_filters=exclude_filters,
        with_event_values=with_event_values,
    )
    return rows.get("", _empty(with_event_values)) if rows else _empty(with_event_values)


def aggregate_grouped(
    metric: BillableMetric,
    *,
    external_subscription_ids: Sequence[str],
    from_datetime: datetime,
    to_datetime: datetime,
    grouped_by: GroupKeys,
    filters: Filters | None = None,
    exclude_filters: Sequence[Filters] = (),
) -> dict[str | None, AggregationResult]:
    """Like `aggregate`, one result per value of properties[grouped_by] (None: events without it).
    Several keys group by every one of them: each result's key is then the JSON array of the
    values (`group_values` reads it back). Groups without any event are absent."""
    return _run(
        metric,
        mode="shared",
        subscription_ids=external_subscription_ids,
        from_datetime=from_datetime,
        to_datetime=to_datetime,
        group_key=grouped_by,
        filters=filters,
        exclude_filters=exclude_filters,
        with_event_values=False,
    )


def aggregate_subscriptions(
    metric: BillableMetric,
    *,
    periods: Sequence[tuple[str, datetime, datetime]],
    filters: Filters | None = None,
    exclude_filters: Sequence[Filters] = (),
) -> dict[str, AggregationResult]:
    """Many (external_subscription_id, from, to) periods in ONE query, keyed by external
    subscription id; every requested subscription is in the answer (zero when it had no event).
    For bulk invoice runs: one index range scan per subscription, one round trip in all."""
    if not periods:
        return {}
    subscription_ids = [sub for sub, _, _ in periods]
    if len(set(subscription_ids)) != len(subscription_ids):
        raise ValueError("aggregate_subscriptions takes each external subscription id once")
    results = _run(
        metric,
        mode="per_subscription",
        periods=periods,
        group_key=None,
        filters=filters,
        exclude_filters=exclude_filters,
        with_event_values=False,
    )
    return {sub: results.get(sub) or _empty(False) for sub in subscription_ids}


# --- SQL (PostgreSQL) ----------------------------------------------------------------------------


def _run(
    metric: BillableMetric,
    *,
    mode: str,
    group_key: GroupKeys | None,
    filters: Filters | None,
    exclude_filters: Sequence[Filters],
    with_event_values: bool,
    subscription_ids: Sequence[str] = (),
    from_datetime: datetime | None = None,
    to_datetime: datetime | None = None,
    periods: Sequence[tuple[str, datetime, datetime]] = (),
) -> dict[str | None, AggregationResult]:
    if mode == "shared":
        start, end = _check_period(from_datetime, to_datetime)
        subscription_ids = list(dict.fromkeys(subscription_ids))  # a repeated id must not double count
        if not subscription_ids:
            return {}
        periods = [(sub, start, end) for sub in subscription_ids]
    else:
        for _, start, end in periods:
            _check_period(start, end)
    if connection.vendor != "postgresql":
        from .aggregation_reference import _aggregate_in_python  # the SQLite path only

        return _aggregate_in_python(metric, mode, periods, group_key, filters, exclude_filters, with_event_values)
    # Folded hours come from the usage rollups (the same answer, read from buckets): see rollup_reads.
    rolled = rollup_aggregate(
        metric,
        mode=mode,
        periods=periods,
        group_key=group_key,
        filters=filters,
        exclude_filters=exclude_filters,
        with_event_values=with_event_values,
    )
    if rolled is not None:
        return rolled

    query = _SqlBuilder(metric, mode, group_key, filters, exclude_filters, with_event_values)
    if mode == "shared":
        query.params.update(subs=list(subscription_ids), f=from_datetime, t=to_datetime)
    else:
        query.params.update(subs=[p[0] for p in periods], fs=[p[1] for p in periods], ts=[p[2] for p in periods])
    sql = query.sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, query.params)
        rows = cursor.fetchall()
    results: dict[str | None, AggregationResult] = {}
    for key, units, events_count, precise, values in rows:
        results[key] = AggregationResult(
            units=apply_rounding(metric, _ZERO if units is None else Decimal(units)),
            events_count=int(events_count or 0),
            event_values=tuple(Decimal(v) for v in values or ()) if with_event_values else None,
            precise_total_amount_cents=_ZERO if precise is None else Decimal(precise),
        )
    return results


def _check_period(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    if start is None or end is None or start.tzinfo is None or end.tzinfo is None:
        raise ValueError("aggregation periods are aware datetimes")
    if end < start:
        raise ValueError("a period ends after it starts")
    return start, end


_NO_KEY = "''::text"


class _SqlBuilder:
    """Builds one aggregation query. All user values (codes, property names, filter values,
    subscription ids) are parameters; only fixed SQL fragments are formatted in."""

    def __init__(
        self,
        metric: BillableMetric,
        mode: str,
        group_key: GroupKeys | None,
        filters: Filters | None,
        exclude_filters: Sequence[Filters],
        with_event_values: bool,
    ) -> None:
        self.metric = metric
        self.mode = mode
        self.with_event_values = with_event_values
        self.params: dict[str, Any] = {
            "code": metric.code,
            "field": metric.field_name,
            "numeric_re": NUMERIC_TEXT_PATTERN,
        }
        if mode == "per_subscription":
            self.key_sql = "p.sub"
        elif isinstance(group_key, str):
            self.params["group"] = group_key
            self.key_sql = "(e.properties ->> %(group)s)"
        elif group_key is not None:
            columns = []
            for n, key in enumerate(group_key):
                self.params[f"group{n}"] = key
                columns.append(f"(e.properties ->> %(group{n})s)")
            self.key_sql = f"(jsonb_build_array({', '.join(columns)})::text)"
        else:
            self.key_sql = _NO_KEY
        self.filter_sql = self._filters(filters, exclude_filters)

    def _filters(self, filters: Filters | None, exclude_filters: Sequence[Filters]) -> str:
        clauses: list[str] = []
        for n, (key, values) in enumerate((filters or {}).items()):
            self.params[f"fk{n}"], self.params[f"fv{n}"] = key, [str(v) for v in values]
            clauses.append(f"(e.properties ->> %(fk{n})s) = ANY(%(fv{n})s::text[])")
        for m, exclude in enumerate(exclude_filters):
            parts = []
            for n, (key, values) in enumerate(exclude.items()):
                self.params[f"xk{m}_{n}"], self.params[f"xv{m}_{n}"] = key, [str(v) for v in values]
                parts.append(f"COALESCE((e.properties ->> %(xk{m}_{n})s) = ANY(%(xv{m}_{n})s::text[]), false)")
            clauses.append(f"NOT ({' AND '.join(parts) or 'true'})")
        return "".join(f" AND {clause}" for clause in clauses)

    def value_sql(self) -> str:
        """v from j, the property's jsonb value (extracted once, one level down)."""
        kind = self.metric.aggregation_type
        if kind == AggregationType.COUNT:
            return "1::numeric"
        if kind == AggregationType.UNIQUE_COUNT:
            return "CASE WHEN jsonb_typeof(j) IN ('string', 'number', 'boolean') THEN j #>> '{}' END"
        # A guarded cast: CASE evaluates its branches in order, so ::numeric only sees numbers.
        return (
            "CASE jsonb_typeof(j) WHEN 'number' THEN j::numeric "
            "WHEN 'string' THEN CASE WHEN (j #>> '{}') ~ %(numeric_re)s THEN (j #>> '{}')::numeric END END"
        )

    def source(self, when: str, *, lean: bool = False, with_operation: bool = False) -> str:
        """Matching events as (k, v, pc[, f, t, id, ts[, op]]); `when` picks the time range:
        "period" [from, to), "until_end" (< to), "before" (< from). `lean`: only (k, v, pc),
        for the plain aggregates (every projected column costs on a million rows). op: the
        unique count's operation, 'remove' or 'add'.

        v is NULL for an event whose value the aggregation skips. Its jsonb value j is extracted
        once in an inner subquery and v computed from it in an outer one. The queries above never
        filter on v in a WHERE (it would be pushed down and evaluated twice) but aggregate it with
        count(v) / FILTER, and the volatile clock_timestamp() columns keep PostgreSQL from
        flattening the subqueries into their parent, which would evaluate the expressions once per
        reference. Measured over 1M events of one subscription: 1.35 s with every extraction
        repeated, ~0.6 s like this, against ~0.4 s for a plain unguarded SUM."""
        start, end = ("%(f)s::timestamptz", "%(t)s::timestamptz") if self.mode == "shared" else ("p.f", "p.t")
        time_sql = {
            "period": f"e.timestamp >= {start} AND e.timestamp < {end}",
            "until_end": f"e.timestamp < {end}",
            "before": f"e.timestamp < {start}",
        }[when]
        passed = "" if lean else ", f, t, id, ts" + (", op" if with_operation else "")
        inner = f"{self.key_sql} AS k, e.precise_total_amount_cents AS pc, clock_timestamp() AS extracted_once"
        if self.metric.aggregation_type != AggregationType.COUNT:
            inner += ", e.properties -> %(field)s AS j"
        if not lean:
            inner += f", {start} AS f, {end} AS t, e.id, e.timestamp AS ts"
            if with_operation:
                inner += ", CASE WHEN e.properties ->> 'operation_type' = 'remove' THEN 'remove' ELSE 'add' END AS op"
        table = Event._meta.db_table
        if self.mode == "shared":
            events = (
                f"SELECT {inner} FROM {table} e WHERE e.code = %(code)s "
                f"AND e.external_subscription_id = ANY(%(subs)s::text[]) AND {time_sql}{self.filter_sql}"
            )
        else:
            events = (
                f"SELECT {inner} FROM unnest(%(subs)s::text[], %(fs)s::timestamptz[], %(ts)s::timestamptz[]) "
                f"AS p(sub, f, t) JOIN {table} e ON e.external_subscription_id = p.sub AND e.code = %(code)s "
                f"AND {time_sql}{self.filter_sql}"
            )
        return f"SELECT k, {self.value_sql()} AS v, pc, clock_timestamp() AS evaluated_once{passed} FROM ({events}) x"

    def values_sql(self, value: str = "v", where: str = "v IS NOT NULL") -> str:
        if not self.with_event_values:
            return "NULL::numeric[]"
        return f"array_agg({value} ORDER BY ts, id) FILTER (WHERE {where})"

    def sql(self) -> str:
        kind = self.metric.aggregation_type
        if kind in (AggregationType.COUNT, AggregationType.SUM, AggregationType.MAX):
            units = {"count_agg": "count(v)", "sum_agg": "sum(v)", "max_agg": "max(v)"}[kind]
            # Without a key (one subscription set, no grouping) a plain aggregate: no hashing.
            grouped = self.key_sql != _NO_KEY
            return (
                f"SELECT {'k' if grouped else _NO_KEY}, {units}, count(v), "
                f"COALESCE(sum(pc) FILTER (WHERE v IS NOT NULL), 0), {self.values_sql()} "
                f"FROM ({self.source('period', lean=not self.with_event_values)}) ev "
                f"{'GROUP BY k ' if grouped else ''}HAVING count(v) > 0"
            )
        if kind == AggregationType.LATEST:
            # Valid values sort first, the latest of them on top; one sort serves the totals too.
            values = (
                "array_agg(v) FILTER (WHERE v IS NOT NULL) OVER (PARTITION BY k ORDER BY ts, id "
                "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"
                if self.with_event_values
                else "NULL::numeric[]"
            )
            return (
                "SELECT k, v, n, pc, vals FROM ("
                "SELECT k, v, count(v) OVER w AS n, "
                "COALESCE(sum(pc) FILTER (WHERE v IS NOT NULL) OVER w, 0) AS pc, "
                f"{values} AS vals, "
                "row_number() OVER (PARTITION BY k ORDER BY v IS NULL, ts DESC, id DESC) AS rn "
                f"FROM ({self.source('period')}) ev WINDOW w AS (PARTITION BY k)"
                ") latest WHERE rn = 1 AND n > 0"
            )
        if kind == AggregationType.UNIQUE_COUNT:
            return self._unique_count_sql()
        if kind == AggregationType.WEIGHTED_SUM:
            return self._weighted_sum_sql()
        raise ValueError(f"unknown aggregation type {kind!r}")

    def _unique_count_sql(self) -> str:
        recurring = self.metric.recurring
        scope = self.source("until_end" if recurring else "period", with_operation=True)
        in_period = "ts >= f AND v IS NOT NULL" if recurring else "v IS NOT NULL"
        return (
            f"WITH ev AS MATERIALIZED ({scope}), "
            "last_ops AS (SELECT DISTINCT ON (k, v) k, op FROM ev WHERE v IS NOT NULL "
            "ORDER BY k, v, ts DESC, id DESC), "
            "units AS (SELECT k, count(*) FILTER (WHERE op = 'add') AS units FROM last_ops GROUP BY k), "
            f"totals AS (SELECT k, count(*) FILTER (WHERE {in_period}) AS n, "
            f"COALESCE(sum(pc) FILTER (WHERE {in_period}), 0) AS pc, "
            f"{self.values_sql('1::numeric', in_period)} AS vals FROM ev GROUP BY k HAVING count(v) > 0) "
            "SELECT k, max(units), max(n), max(pc), (array_agg(vals) FILTER (WHERE vals IS NOT NULL))[1] "
            "FROM (SELECT k, units, NULL::bigint AS n, NULL::numeric AS pc, NULL::numeric[] AS vals FROM units "
            "UNION ALL SELECT k, NULL, n, pc, vals FROM totals) parts GROUP BY k"
        )

    def _weighted_sum_sql(self) -> str:
        # An event with a skipped value stays in the sequence: it only splits a segment of the
        # running total (sum() OVER ignores its NULL), which leaves the integral unchanged.
        points = f"SELECT k, f, t, ts, id, v, pc, true AS is_event FROM ({self.source('period')}) ev"
        if self.metric.recurring:
            # The running total carried in: one point per key at `from`, sorted before its events.
            points += (
                " UNION ALL SELECT k, f, t, f AS ts, -1::bigint AS id, sum(v) AS v, NULL::numeric AS pc, "
                f"false AS is_event FROM ({self.source('before')}) before GROUP BY k, f, t HAVING count(v) > 0"
            )
        # The numerator carries 20 decimals so the division keeps them (numeric division keeps
        # the larger of its operands' scales, and at least 16 significant digits).
        return (
            "SELECT k, COALESCE(sum(running * seconds), 0) * 1.00000000000000000000 "
            "/ NULLIF(EXTRACT(EPOCH FROM (max(t) - max(f))), 0), "
            "count(v) FILTER (WHERE is_event), COALESCE(sum(pc) FILTER (WHERE is_event AND v IS NOT NULL), 0), "
            f"{self.values_sql('v', 'is_event AND v IS NOT NULL')} "
            "FROM (SELECT k, f, t, ts, id, v, pc, is_event, "
            "sum(v) OVER (PARTITION BY k ORDER BY ts, id ROWS UNBOUNDED PRECEDING) AS running, "
            "EXTRACT(EPOCH FROM (lead(ts, 1, t) OVER (PARTITION BY k ORDER BY ts, id) - ts)) AS seconds "
            f"FROM ({points}) points) w GROUP BY k HAVING count(v) > 0"
        )


# --- Prorated aggregation (prorated charges on recurring sum and unique count metrics) ----------
#
# Lago's ProratedAggregations::SumService / UniqueCountService. Units of a recurring metric are
# weighted by the part of the period they existed, counted in local calendar days of the
# subscription's timezone, over the FULL period's days:
# - sum: an event's value counts from its local day to the last day of [from, to), inclusive
#   (a seat added on day 11 of a 30-day month counts 20/30; a removal likewise subtracts from its
#   day on). The running total carried in from before `from` counts for the days of [from, to),
#   so a subscription started or terminated inside the period only pays its own days.
# - unique count: a value counts from the day it is added (or `from`) to the day it is removed,
#   both inclusive (Lago: a seat held on a day is billed for that day), else to the last day; a
#   value removed and re-added on the same day counts that day once.
# Full units (the unprorated total at the period's end, carried-in included) pick tiers; prorated
# units (rounded up to 5 decimals, as Lago) are what is priced. One query per (metric,
# subscription(s), period); the per-event list a prorated graduated charge walks comes from the
# same query as arrays.

PRORATED_AGGREGATIONS = (AggregationType.SUM, AggregationType.UNIQUE_COUNT)
_PRORATED_PLACES = Decimal("0.00001")


@dataclass(frozen=True)
class ProratedEvent:
    """One step of the units over the period: the carried-in total first (at `from`), then each
    event of the period that changes them, in (timestamp, id) order."""

    timestamp: datetime
    units: Decimal  # full units it adds (negative: a removal)
    prorated_units: Decimal  # units x its days / the full period's days (unrounded)


@dataclass(frozen=True)
class ProratedAggregationResult:
    units: Decimal  # full units at the period's end, carried-in included, after the metric's rounding
    prorated_units: Decimal  # time-weighted units, rounded up to 5 decimals (Lago's ceil(5))
    events_count: int  # events of the period (carried-in events are not counted)
    # The steps (carried-in first), only when with_events=True (prorated graduated charges).
    events: tuple[ProratedEvent, ...] | None = None
    precise_total_amount_cents: Decimal = Decimal(0)


@dataclass(frozen=True)
class ProratedPeriod:
    """A subscription's period for `aggregate_prorated_subscriptions`: [from, to), the local
    days of the full period it belongs to and the subscription's timezone."""

    external_subscription_id: str
    from_datetime: datetime
    to_datetime: datetime
    full_days: int
    timezone: str = "UTC"


def _empty_prorated(with_events: bool) -> ProratedAggregationResult:
    return ProratedAggregationResult(
        units=_ZERO, prorated_units=_ZERO, events_count=0, events=() if with_events else None
    )


def aggregate_prorated(
    metric: BillableMetric,
    *,
    external_subscription_ids: Sequence[str],
    from_datetime: datetime,
    to_datetime: datetime,
    full_days: int,
    timezone: str = "UTC",
    filters: Filters | None = None,
    exclude_filters: Sequence[Filters] = (),
    with_events: bool = False,
) -> ProratedAggregationResult:
    """Full and prorated units of the recurring sum or unique count `metric` over [from, to),
    a part of a full period of `full_days` local days in `timezone`."""
    periods = [
        ProratedPeriod(sub, from_datetime, to_datetime, full_days, timezone)
        for sub in dict.fromkeys(external_subscription_ids)
    ]
    if not periods:
        return _empty_prorated(with_events)
    rows = _run_prorated(metric, "shared", periods, None, filters, exclude_filters, with_events)
    return rows.get("") or _empty_prorated(with_events)


def aggregate_prorated_grouped(
    metric: BillableMetric,
    *,
    external_subscription_ids: Sequence[str],
    from_datetime: datetime,
    to_datetime: datetime,
    full_days: int,
    grouped_by: GroupKeys,
    timezone: str = "UTC",
    filters: Filters | None = None,
    exclude_filters: Sequence[Filters] = (),
) -> dict[str | None, ProratedAggregationResult]:
    """Like `aggregate_prorated`, one result per value of properties[grouped_by] (None: events
    without it; several keys as `aggregate_grouped`); groups without any event, carried-in or in
    the period, are absent."""
    periods = [
        ProratedPeriod(sub, from_datetime, to_datetime, full_days, timezone)
        for sub in dict.fromkeys(external_subscription_ids)
    ]
    if not periods:
        return {}
    return _run_prorated(metric, "shared", periods, grouped_by, filters, exclude_filters, False)


def aggregate_prorated_subscriptions(
    metric: BillableMetric,
    *,
    periods: Sequence[ProratedPeriod],
    filters: Filters | None = None,
    exclude_filters: Sequence[Filters] = (),
    with_events: bool = False,
) -> dict[str, ProratedAggregationResult]:
    """Many subscription periods in ONE query, keyed by external subscription id (every one
    requested is in the answer), for bulk invoice runs."""
    if not periods:
        return {}
    subscription_ids = [p.external_subscription_id for p in periods]
    if len(set(subscription_ids)) != len(subscription_ids):
        raise ValueError("aggregate_prorated_subscriptions takes each external subscription id once")
    results = _run_prorated(metric, "per_subscription", periods, None, filters, exclude_filters, with_events)
    return {sub: results.get(sub) or _empty_prorated(with_events) for sub in subscription_ids}


def _run_prorated(
    metric: BillableMetric,
    mode: str,
    periods: Sequence[ProratedPeriod],
    group_key: GroupKeys | None,
    filters: Filters | None,
    exclude_filters: Sequence[Filters],
    with_events: bool,
) -> dict[str | None, ProratedAggregationResult]:
    if metric.aggregation_type not in PRORATED_AGGREGATIONS:
        raise ValueError(f"no prorated aggregation for {metric.aggregation_type!r}")
    for period in periods:
        _check_period(period.from_datetime, period.to_datetime)
        if period.full_days < 1:
            raise ValueError("a full period has at least one day")
    if connection.vendor != "postgresql":
        from .aggregation_reference import _prorated_in_python  # the SQLite path only

        return _prorated_in_python(metric, mode, periods, group_key, filters, exclude_filters, with_events)

    query = _ProratedSqlBuilder(metric, mode, group_key, filters, exclude_filters, with_events)
    if mode == "shared":
        first = periods[0]
        query.params.update(
            subs=[p.external_subscription_id for p in periods],
            f=first.from_datetime,
            t=first.to_datetime,
            tz=first.timezone or "UTC",
            fd=first.full_days,
        )
    else:
        query.params.update(
            subs=[p.external_subscription_id for p in periods],
            fs=[p.from_datetime for p in periods],
            ts=[p.to_datetime for p in periods],
            tzs=[p.timezone or "UTC" for p in periods],
            fds=[p.full_days for p in periods],
        )
    with connection.cursor() as cursor:
        cursor.execute(query.sql(), query.params)
        rows = cursor.fetchall()
    results: dict[str | None, ProratedAggregationResult] = {}
    for (key, units, prorated, count, precise, carried_n, carried_units, carried_prorated, start, stamps, values,
         prorated_values) in rows:  # fmt: skip
        events: tuple[ProratedEvent, ...] | None = None
        if with_events:
            steps = [ProratedEvent(start, Decimal(carried_units), Decimal(carried_prorated))] if carried_n else []
            steps += [
                ProratedEvent(stamp, Decimal(value), Decimal(pro))
                for stamp, value, pro in zip(stamps or (), values or (), prorated_values or (), strict=True)
            ]
            events = tuple(steps)
        results[key] = ProratedAggregationResult(
            units=apply_rounding(metric, Decimal(units or 0)),
            prorated_units=_ceil_prorated(Decimal(prorated or 0)),
            events_count=int(count or 0),
            events=events,
            precise_total_amount_cents=Decimal(precise or 0),
        )
    return results


def _ceil_prorated(value: Decimal) -> Decimal:
    return value.quantize(_PRORATED_PLACES, rounding=ROUND_CEILING, context=_WIDE)


class _ProratedSqlBuilder(_SqlBuilder):
    """The prorated queries, on the same event source (filters, guarded casts, one range scan per
    subscription) as the plain ones. Per period: `tz` its timezone, `fd` its full days; local days
    are dates in `tz`: first_day of `from`, last_day of the instant before `to`."""

    def _period_columns(self) -> tuple[str, str]:
        """(SELECT list of tz/fd, JOIN that provides them) for the rows of `ev`."""
        if self.mode == "shared":
            return "%(tz)s::text AS tz, %(fd)s::int AS fd", ""
        return "q.tz, q.fd", (
            "JOIN unnest(%(subs)s::text[], %(tzs)s::text[], %(fds)s::int[]) AS q(sub, tz, fd) ON q.sub = ev.k"
        )

    def sql(self) -> str:
        if self.metric.aggregation_type == AggregationType.SUM:
            return self._prorated_sum_sql()
        return self._prorated_unique_count_sql()

    def _arrays(self, where: str, value: str, prorated: str) -> str:
        if not self.with_event_values:
            return "NULL::timestamptz[] AS stamps, NULL::numeric[] AS vals, NULL::numeric[] AS pros"
        return (
            f"array_agg(ts ORDER BY ts, id) FILTER (WHERE {where}) AS stamps, "
            f"array_agg({value} ORDER BY ts, id) FILTER (WHERE {where}) AS vals, "
            f"array_agg({prorated} ORDER BY ts, id) FILTER (WHERE {where}) AS pros"
        )

    def _prorated_sum_sql(self) -> str:
        columns, join = self._period_columns()
        # d: the local days from the event's day (or `from`'s, for a carried-in event) to the
        # last day of [from, to), inclusive. A skipped value (v NULL) counts nowhere.
        days = (
            "GREATEST(((t - interval '1 microsecond') AT TIME ZONE tz)::date "
            "- (GREATEST(ts, f) AT TIME ZONE tz)::date + 1, 0)"
        )
        # 20 decimals kept through the division (see _weighted_sum_sql).
        share = "v * d * 1.00000000000000000000 / fd"
        return (
            f"WITH ev AS MATERIALIZED ({self.source('until_end')}), "
            f"dated AS (SELECT k, v, pc, f, t, ts, id, fd, {days} AS d "
            f"FROM (SELECT ev.*, {columns} FROM ev {join}) x) "
            "SELECT k, sum(v), COALESCE(sum(v * d), 0) * 1.00000000000000000000 / max(fd), "
            "count(v) FILTER (WHERE ts >= f), COALESCE(sum(pc) FILTER (WHERE ts >= f AND v IS NOT NULL), 0), "
            "count(v) FILTER (WHERE ts < f), COALESCE(sum(v) FILTER (WHERE ts < f), 0), "
            "COALESCE(sum(v * d) FILTER (WHERE ts < f), 0) * 1.00000000000000000000 / max(fd), max(f), "
            f"{self._arrays('ts >= f AND v IS NOT NULL', 'v', share)} "
            "FROM dated GROUP BY k HAVING count(v) > 0"
        )

    def _prorated_unique_count_sql(self) -> str:
        columns, join = self._period_columns()
        # delta: +1 when an event makes its value active, -1 when it removes an active one, 0
        # for repeats (an add of an active value, a removal of an inactive one). Only the
        # transitions matter; an add's span runs to the next transition (its removal).
        first_day, last_day = "(f AT TIME ZONE tz)::date", "((t - interval '1 microsecond') AT TIME ZONE tz)::date"
        span_days = (
            "CASE WHEN delta <> 1 OR removed_at < f THEN 0 ELSE GREATEST("
            f"COALESCE((removed_at AT TIME ZONE tz)::date, {last_day}) "
            f"- GREATEST((ts AT TIME ZONE tz)::date, {first_day}) + 1 "
            # Re-added on the day it was removed: that day is counted by the earlier span.
            f"- CASE WHEN previous_at >= f AND (previous_at AT TIME ZONE tz)::date = (ts AT TIME ZONE tz)::date "
            "THEN 1 ELSE 0 END, 0) END"
        )
        share = "d * 1.00000000000000000000 / fd"
        return (
            f"WITH ev AS MATERIALIZED ({self.source('until_end', with_operation=True)}), "
            f"steps AS (SELECT x.*, CASE WHEN v IS NULL THEN 0 "
            "WHEN op = 'add' AND lag(op) OVER vw IS DISTINCT FROM 'add' THEN 1 "
            "WHEN op = 'remove' AND lag(op) OVER vw = 'add' THEN -1 ELSE 0 END AS delta "
            f"FROM (SELECT ev.*, {columns} FROM ev {join}) x "
            "WINDOW vw AS (PARTITION BY k, v ORDER BY ts, id)), "
            "spans AS (SELECT *, lead(ts) OVER tw AS removed_at, lag(ts) OVER tw AS previous_at "
            "FROM steps WHERE delta <> 0 WINDOW tw AS (PARTITION BY k, v ORDER BY ts, id)), "
            f"dated AS (SELECT k, ts, id, f, fd, delta, {span_days} AS d FROM spans), "
            "changes AS (SELECT k, sum(delta) AS units, COALESCE(sum(d), 0) * 1.00000000000000000000 / max(fd) "
            "AS prorated, count(*) FILTER (WHERE ts < f) AS carried_n, "
            "COALESCE(sum(delta) FILTER (WHERE ts < f), 0) AS carried_units, "
            "COALESCE(sum(d) FILTER (WHERE ts < f), 0) * 1.00000000000000000000 / max(fd) AS carried_prorated, "
            "max(f) AS start, "
            f"{self._arrays('ts >= f', 'delta::numeric', share)} FROM dated GROUP BY k), "
            "totals AS (SELECT k, count(*) FILTER (WHERE ts >= f AND v IS NOT NULL) AS n, "
            "COALESCE(sum(pc) FILTER (WHERE ts >= f AND v IS NOT NULL), 0) AS pc "
            "FROM ev GROUP BY k HAVING count(v) > 0) "
            "SELECT totals.k, COALESCE(c.units, 0), COALESCE(c.prorated, 0), totals.n, totals.pc, "
            "COALESCE(c.carried_n, 0), COALESCE(c.carried_units, 0), COALESCE(c.carried_prorated, 0), c.start, "
            "c.stamps, c.vals, c.pros "
            "FROM totals LEFT JOIN changes c ON c.k IS NOT DISTINCT FROM totals.k"
        )
