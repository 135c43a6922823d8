"""The aggregation read path over usage rollups (PostgreSQL): buckets below the watermark, raw
events elsewhere, combined into exactly the raw query's answer (metrics.aggregation semantics)."""

# For each subscription of a read, the whole hours of the period that are folded and clean are
# "covered" (read from the buckets); the rest of the period (a partial first and last hour, dirty
# hours, everything after the watermark) is read from the events, one index range per piece. The
# combining SQL restates each aggregation with the same SQL arithmetic as the raw query, so sums
# keep their digits and scale (count and sum may instead read an hour straddling the period's
# start or end as its bucket minus the events outside the period: `_split`'s `widen`):
# - count/sum/max: sums of counts and sums, the max of maxes; latest: the greatest (ts, id) of the
#   buckets' latest events and the raw ones.
# - weighted sum: the raw query integrates the running total; that integral is sum(v x (t - ts))
#   over the events (+ the carried-in total x (t - f)), which a bucket gives as t x sum(v) -
#   sum(v x ts) in epoch seconds: the same exact numeric, so the same division.
# - unique count: the value table's last operation per value (among folded events, all before
#   the watermark) merged with the raw events' by (ts, id); only for periods ending at or after
#   the watermark (else that subscription reads raw).
#
# `None` (the caller reads raw) when the rollups cannot answer: per-event values asked
# (percentage charges), no subscription with usable rollups, or nothing they cover.

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import connection

from .models import (
    AggregationType,
    BillableMetric,
    Event,
    UsageRollup,
    UsageRollupDirty,
    UsageRollupValue,
    UsageWatermark,
)
from .rollups import HOUR, definition_matches, floor_hour

if TYPE_CHECKING:
    from .aggregation import AggregationResult, Filters, GroupKeys

_EVENTS = Event._meta.db_table
_ROLLUPS = UsageRollup._meta.db_table
_VALUES = UsageRollupValue._meta.db_table
_DIRTY = UsageRollupDirty._meta.db_table
_WATERMARKS = UsageWatermark._meta.db_table
# Before any event (and a valid timestamptz): the start of a recurring metric's scope.
_BEGINNING = datetime(1, 1, 1, tzinfo=UTC)


def _as_text(definition: Any) -> str:
    """jsonb as PostgreSQL prints it (Django's psycopg setup hands jsonb over as that text)."""
    return definition if isinstance(definition, str) else json.dumps(definition)


def _ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


@dataclass
class _Pieces:
    """Per subscription: covered bucket spans and raw event ranges, each tagged with the
    subscription's period (f, t). `widened[i]` > 0: covered[i] is an hour straddling a period
    boundary, read whole, whose events outside the period are minus[widened[i] - 1] (subtracted)."""

    covered: list[tuple[str, datetime, datetime, datetime, datetime]]
    raw: list[tuple[str, datetime, datetime, datetime, datetime]]
    widened: list[int] = field(default_factory=list)
    minus: list[tuple[str, datetime, datetime, datetime, datetime]] = field(default_factory=list)


Span = tuple[datetime, datetime]


def _subtract(start: datetime, end: datetime, holes: list[Span]) -> list[Span]:
    """[start, end) minus sorted, disjoint holes."""
    pieces, cursor = [], start
    for a, b in holes:
        if b <= cursor or a >= end:
            continue
        if a > cursor:
            pieces.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < end:
        pieces.append((cursor, end))
    return pieces


def _split(
    sub: str,
    start: datetime,
    end: datetime,
    folded_until: datetime | None,
    dirty: Sequence[datetime],
    scope_start: datetime,
    pieces: _Pieces,
    widen: bool = False,
) -> None:
    """Covered: whole clean hours inside [scope_start, min(watermark, end)) that do not straddle
    the period's start. Raw: the rest of [scope_start, end).

    `widen` (count and sum, whose parts subtract exactly): an hour straddling the period's start
    or end, folded and clean, is read from its bucket minus the raw events of the hour outside
    the period when those are the smaller part of the hour (by time): a period starting at
    06:00:12 reads the 12 seconds before it instead of the 59:48 minutes after it."""
    covered: list[Span] = []
    extra: list[tuple[Span, Span]] = []  # (the widened hour, its part outside the period)
    if folded_until is not None:
        high = min(folded_until, floor_hour(end))
        spans = [(_ceil_hour(scope_start), high)]
        if scope_start < start:  # recurring: the hours before the period, then those inside it
            spans = [(_ceil_hour(scope_start), min(floor_hour(start), high)), (_ceil_hour(start), high)]
        holes = [(d, d + HOUR) for d in sorted(dirty)]
        for a, b in spans:
            if b > a:
                covered.extend(_subtract(a, b, holes))
        if widen and scope_start == start:
            dirty_hours = set(dirty)
            first, last = floor_hour(start), floor_hour(end)
            if (
                first < start
                and first + HOUR <= min(folded_until, end)
                and first not in dirty_hours
                and start - first < first + HOUR - start
            ):
                extra.append(((first, first + HOUR), (first, start)))
            if (
                start <= last < end
                and last + HOUR <= folded_until
                and last not in dirty_hours
                and last + HOUR - end < end - last
            ):
                extra.append(((last, last + HOUR), (end, last + HOUR)))
    for a, b in covered:
        pieces.covered.append((sub, a, b, start, end))
        pieces.widened.append(0)
    for (a, b), (outside_a, outside_b) in extra:
        pieces.minus.append((sub, outside_a, outside_b, start, end))
        pieces.covered.append((sub, a, b, start, end))
        pieces.widened.append(len(pieces.minus))
    for a, b in _subtract(scope_start, end, sorted(covered + [hour for hour, _ in extra])):
        pieces.raw.append((sub, a, b, start, end))


_WATERMARKS_SQL = f"""
SELECT w.external_subscription_id, w.folded_until, w.definition,
       (SELECT array_agg(d.bucket_start) FROM {_DIRTY} d
        WHERE d.external_subscription_id = w.external_subscription_id AND d.code = w.code
          AND d.bucket_start < w.folded_until)
FROM {_WATERMARKS} w
WHERE w.code = %s AND w.external_subscription_id = ANY(%s::text[]) AND w.folded_until IS NOT NULL
"""


# The watermark rows a caller already read, by (code, external subscription id): None for a pair
# without a folded watermark. Set for one request by `watermarks_known` (current usage reads them
# with its charges: one round trip less); rollup_aggregate asks the database for any other pair.
_KNOWN: ContextVar[Mapping[tuple[str, str], Any] | None] = ContextVar("usage_watermarks_known", default=None)


def watermark_sql(code_sql: str, subscription_sql: str) -> str:
    """A scalar subquery: the jsonb of what _WATERMARKS_SQL reads of one pair (NULL without a
    folded watermark), for `watermark_from_json` and `watermarks_known`. Its definition is kept
    as PostgreSQL's text (the statement's guard compares that text)."""
    return (
        "(SELECT jsonb_build_object('folded_until', w.folded_until, 'definition', w.definition::text, "
        f"'dirty', (SELECT array_agg(d.bucket_start) FROM {_DIRTY} d "
        "WHERE d.external_subscription_id = w.external_subscription_id AND d.code = w.code "
        f"AND d.bucket_start < w.folded_until)) FROM {_WATERMARKS} w WHERE w.code = {code_sql} "
        f"AND w.external_subscription_id = {subscription_sql} AND w.folded_until IS NOT NULL)"
    )


def watermark_from_json(value: Any) -> tuple[datetime, str | None, list[datetime]] | None:
    """`watermark_sql`'s jsonb (decoded) as (folded_until, definition text, dirty hours)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = json.loads(value)
    return (
        datetime.fromisoformat(value["folded_until"]),
        value["definition"],
        [datetime.fromisoformat(hour) for hour in value["dirty"] or ()],
    )


@contextmanager
def watermarks_known(rows: Mapping[tuple[str, str], Any]) -> Iterator[None]:
    """Within: reads of these (code, subscription) pairs use these watermark rows
    (`watermark_from_json`'s) instead of reading them. Read earlier in the same request: the
    combining statement still checks that they stand."""
    token = _KNOWN.set(rows)
    try:
        yield
    finally:
        _KNOWN.reset(token)


def rollup_aggregate(
    metric: BillableMetric,
    *,
    mode: str,
    periods: Sequence[tuple[str, datetime, datetime]],
    group_key: GroupKeys | None,
    filters: Filters | None,
    exclude_filters: Sequence[Filters],
    with_event_values: bool,
) -> dict[str | None, AggregationResult] | None:
    """metrics.aggregation._run's answer from the rollups, or None (read raw)."""
    if with_event_values or connection.vendor != "postgresql" or not periods:
        return None
    needed = set((filters or {}).keys()) | {k for x in exclude_filters for k in x}
    if isinstance(group_key, str):
        needed.add(group_key)
    elif group_key is not None:
        needed.update(group_key)
    subscriptions = [sub for sub, _, _ in periods]
    known = _KNOWN.get()
    rows: list[Any]
    if known is not None and all((metric.code, sub) in known for sub in subscriptions):
        rows = [(sub, *known[metric.code, sub]) for sub in subscriptions if known[metric.code, sub] is not None]
    else:
        with connection.cursor() as cursor:
            cursor.execute(_WATERMARKS_SQL, [metric.code, subscriptions])
            rows = cursor.fetchall()
    # The definitions as read (jsonb text), for the main query's check that they still hold.
    read_marks = {sub: (folded, _as_text(definition)) for sub, folded, definition, _ in rows}
    marks = {
        sub: (folded, dirty or [])
        for sub, folded, definition, dirty in rows
        if definition_matches(definition, metric, needed)
    }
    if not marks:
        return None
    kind = metric.aggregation_type
    recurring_scope = metric.recurring and kind in (AggregationType.WEIGHTED_SUM, AggregationType.UNIQUE_COUNT)
    guard = {sub: read_marks[sub] for sub in marks}
    # Count and sum read an hour straddling a period boundary as its bucket minus the other part
    # (_split's `widen`). Its digits are exact; its scale may not be (a subtracted event of more
    # decimals than the period's events keeps them): the statement says so per key (`exact`), and
    # the read is then made again without widening.
    for widen in (kind in (AggregationType.COUNT, AggregationType.SUM), False):
        pieces = _Pieces([], [])
        for sub, start, end in periods:
            folded, dirty = marks.get(sub, (None, []))
            if kind == AggregationType.UNIQUE_COUNT and folded is not None and end < folded:
                # The value table knows each value's last operation before the watermark, not before `end`.
                folded = None
            _split(sub, start, end, folded, dirty, _BEGINNING if recurring_scope else start, pieces, widen)
        if not pieces.covered:
            return None
        answer = _combine(metric, mode, group_key, filters, exclude_filters, pieces, marks, guard)
        if answer is not _INEXACT:
            return answer
        if not pieces.minus:
            break
    return None


_INEXACT: Any = object()  # _combine's answer when a widened hour could change a sum's scale


def _combine(
    metric: BillableMetric,
    mode: str,
    group_key: GroupKeys | None,
    filters: Filters | None,
    exclude_filters: Sequence[Filters],
    pieces: _Pieces,
    marks: dict[str, tuple[datetime | None, list[datetime]]],
    guard: dict[str, tuple[datetime, str]],
) -> dict[str | None, AggregationResult] | None:
    from .aggregation import AggregationResult, _SqlBuilder, apply_rounding

    builder = _SqlBuilder(metric, mode, group_key, filters, exclude_filters, False)
    params = builder.params
    widened = pieces.widened or [0] * len(pieces.covered)
    numbered = (
        ("c", pieces.covered, widened),
        ("x", pieces.raw, [0] * len(pieces.raw)),
        ("m", pieces.minus, list(range(1, len(pieces.minus) + 1))),
    )
    for prefix, rows, numbers in numbered:
        params[f"{prefix}s"] = [r[0] for r in rows]
        params[f"{prefix}a"] = [r[1] for r in rows]
        params[f"{prefix}b"] = [r[2] for r in rows]
        params[f"{prefix}f"] = [r[3] for r in rows]
        params[f"{prefix}t"] = [r[4] for r in rows]
        params[f"{prefix}w"] = numbers
    kind = metric.aggregation_type
    raw_key = builder.key_sql  # p.sub, (e.properties ->> group) or ''
    bucket_key = raw_key.replace("e.properties", "r.dims")
    value = "" if kind == AggregationType.COUNT else ", e.properties -> %(field)s AS j"
    # Only the columns the kind's combining reads travel out of the raw events: every projected
    # column costs per event (measured on 12,000 raw events: 71 ms with all of them in a
    # materialized CTE, 46 ms lean and aggregated in place, against 26 ms for an unguarded SUM).
    passing: dict[str, list[str]] = {
        AggregationType.LATEST: ["id", "ts"],
        AggregationType.WEIGHTED_SUM: ["f", "t", "ts"],
        AggregationType.UNIQUE_COUNT: ["f", "id", "ts", "removes"],
    }
    passed = passing.get(str(kind), [])
    inner = {"f": "p.f", "t": "p.t", "id": "e.id", "ts": "e.timestamp AS ts"}
    inner["w"] = "p.w"
    inner["removes"] = "COALESCE(e.properties ->> 'operation_type' = 'remove', false) AS removes"

    def raw_sql(prefix: str, passed: list[str]) -> str:
        """The raw events of the `prefix` pieces (x: the raw ranges, m: the widened hours' parts
        outside the period, with their piece number w)."""
        return (
            f"SELECT k, {builder.value_sql()} AS v, pc{''.join(f', {c}' for c in passed)}, "
            "clock_timestamp() AS evaluated_once FROM ("
            f"SELECT {raw_key} AS k, e.precise_total_amount_cents AS pc{''.join(f', {inner[c]}' for c in passed)}"
            f"{value}, clock_timestamp() AS extracted_once "
            f"FROM unnest(%({prefix}s)s::text[], %({prefix}a)s::timestamptz[], %({prefix}b)s::timestamptz[], "
            f"%({prefix}f)s::timestamptz[], %({prefix}t)s::timestamptz[], %({prefix}w)s::int[]) "
            "AS p(sub, a, b, f, t, w) "
            # LATERAL ... OFFSET 0: one index range per piece, never a hash join over the
            # subscription's every event. The range is OR-ed with an empty one ([b, b)) so that it is
            # read by a bitmap heap scan (an OR is only served by BitmapOr): each heap page once, in
            # page order, where a plain index scan visits a page per event (measured on 12,000 raw
            # events whose heap order is scrambled: 2,712 buffers instead of 12,538, 147 ms against
            # 204 ms median on a loaded machine).
            "CROSS JOIN LATERAL (SELECT e.id, e.timestamp, e.properties, e.precise_total_amount_cents "
            f"FROM {_EVENTS} e WHERE e.external_subscription_id = p.sub AND e.code = %(code)s "
            "AND ((e.timestamp >= p.a AND e.timestamp < p.b) OR (e.timestamp >= p.b AND e.timestamp < p.b)) "
            f"OFFSET 0) e WHERE true{builder.filter_sql}) x"
        )

    raw = raw_sql("x", passed)
    bucket_filters = builder.filter_sql.replace("e.properties", "r.dims")
    covered_from = (
        "unnest(%(cs)s::text[], %(ca)s::timestamptz[], %(cb)s::timestamptz[], %(cf)s::timestamptz[], "
        "%(ct)s::timestamptz[], %(cw)s::int[]) AS p(sub, a, b, f, t, w)"
    )
    buckets = (
        f"SELECT {bucket_key} AS k, r.*, p.f, p.t, p.w FROM {covered_from} "
        f"CROSS JOIN LATERAL (SELECT * FROM {_ROLLUPS} r "
        "WHERE r.external_subscription_id = p.sub AND r.code = %(code)s AND r.bucket_start >= p.a "
        f"AND r.bucket_start < p.b OFFSET 0) r WHERE true{bucket_filters}"
    )
    head = f"WITH raw AS MATERIALIZED ({raw}), buckets AS MATERIALIZED ({buckets}) "
    if kind in (AggregationType.COUNT, AggregationType.SUM, AggregationType.MAX):
        # The raw events are read once here: aggregated in place, not through a CTE (its
        # clock_timestamp() columns would materialize it: about a third of the read's time).
        units = {"count_agg": "sum(n)", "sum_agg": "sum(s)", "max_agg": "max(m)"}[kind]
        # Only the aggregate the kind reads (numeric aggregates cost per raw event).
        raw_sum = "sum(v)" if kind == AggregationType.SUM else "NULL::numeric"
        raw_max = "max(v)" if kind == AggregationType.MAX else "NULL::numeric"
        if not pieces.minus:
            sql = (
                f"WITH buckets AS MATERIALIZED ({buckets}), parts AS (SELECT k, value_sum AS s, value_max AS m, "
                f"events_count AS n, precise_sum AS pc FROM buckets UNION ALL SELECT k, {raw_sum}, {raw_max}, "
                f"count(v), sum(pc) FILTER (WHERE v IS NOT NULL) FROM ({raw}) raw GROUP BY k) "
                f"SELECT k, {units}, sum(n), COALESCE(sum(pc), 0), true FROM parts GROUP BY k HAVING sum(n) > 0"
            )
        else:
            # Widened hours (count, sum): + their buckets, - their events outside the period
            # (w: the hour's number, 0 elsewhere). Exact digits; the scale of a sum (of s, of pc)
            # is the most decimals of its terms, so a key's answer has the raw query's scale unless
            # some subtracted part has more decimals than the hour's events inside the period:
            # known not to when the subtracted part has fewer decimals than its bucket (then the
            # inside has the bucket's) or the bucket no more than the key's other parts. Else
            # `exact` is false and the read is made again without widening.
            same_scale = "(c.sc IS NULL OR c.sc < c.sb OR c.sb <= o.so)" if kind == AggregationType.SUM else "true"
            sql = (
                f"WITH buckets AS MATERIALIZED ({buckets}), parts AS MATERIALIZED (SELECT k, value_sum AS s, "
                "events_count AS n, precise_sum AS pc, w, w > 0 AS whole FROM buckets "
                f"UNION ALL SELECT k, {raw_sum}, count(v), "
                f"sum(pc) FILTER (WHERE v IS NOT NULL), 0, false FROM ({raw}) raw GROUP BY k "
                f"UNION ALL SELECT k, -{raw_sum}, -count(v), -(sum(pc) FILTER (WHERE v IS NOT NULL)), w, false "
                f"FROM ({raw_sql('m', ['w'])}) minus GROUP BY k, w), "
                "others AS (SELECT k, max(scale(s)) AS so, max(scale(pc)) AS po FROM parts WHERE w = 0 GROUP BY k), "
                "hours AS (SELECT k, w, max(scale(s)) FILTER (WHERE whole) AS sb, "
                "max(scale(s)) FILTER (WHERE NOT whole) AS sc, max(scale(pc)) FILTER (WHERE whole) AS pb, "
                "max(scale(pc)) FILTER (WHERE NOT whole) AS pcc FROM parts WHERE w > 0 GROUP BY k, w), "
                f"exact AS (SELECT c.k, bool_and(COALESCE({same_scale} "
                "AND (c.pcc IS NULL OR c.pcc < c.pb OR c.pb <= o.po), false)) AS exact "
                "FROM hours c LEFT JOIN others o ON o.k IS NOT DISTINCT FROM c.k GROUP BY c.k), "
                f"totals AS (SELECT k, {units} AS units, sum(n) AS n, COALESCE(sum(pc), 0) AS pc FROM parts "
                "GROUP BY k HAVING sum(n) > 0) "
                "SELECT t.k, t.units, t.n, t.pc, COALESCE(x.exact, true) FROM totals t "
                "LEFT JOIN exact x ON x.k IS NOT DISTINCT FROM t.k"
            )
    elif kind == AggregationType.LATEST:
        sql = (
            f"{head}, parts AS (SELECT k, latest_timestamp AS ts, latest_event_id AS id, latest_value AS v, "
            "events_count AS n, precise_sum AS pc FROM buckets "
            "UNION ALL SELECT * FROM (SELECT DISTINCT ON (k) k, ts, id, v, 0::bigint, NULL::numeric FROM raw "
            "WHERE v IS NOT NULL ORDER BY k, ts DESC, id DESC) l "
            "UNION ALL SELECT k, NULL, NULL, NULL, count(v), sum(pc) FILTER (WHERE v IS NOT NULL) FROM raw GROUP BY k) "
            "SELECT k, (array_agg(v ORDER BY ts DESC, id DESC) FILTER (WHERE v IS NOT NULL))[1], sum(n), "
            "COALESCE(sum(pc), 0), true FROM parts GROUP BY k HAVING sum(n) > 0"
        )
    elif kind == AggregationType.WEIGHTED_SUM:
        # in: the integral's terms of the period's events; carried: the running total before f.
        sql = (
            f"{head}, parts AS ("
            "SELECT k, f, t, CASE WHEN bucket_start >= f THEN value_sum * EXTRACT(EPOCH FROM t) - value_time_sum END "
            "AS term, CASE WHEN bucket_start < f THEN value_sum END AS carried, "
            "CASE WHEN bucket_start >= f THEN events_count ELSE 0 END AS n, events_count AS all_n, "
            "CASE WHEN bucket_start >= f THEN precise_sum END AS pc FROM buckets "
            "UNION ALL SELECT k, max(f), max(t), sum(v * EXTRACT(EPOCH FROM (t - ts))) FILTER (WHERE ts >= f), "
            "sum(v) FILTER (WHERE ts < f), count(v) FILTER (WHERE ts >= f), count(v), "
            "sum(pc) FILTER (WHERE ts >= f AND v IS NOT NULL) FROM raw GROUP BY k) "
            "SELECT k, COALESCE(sum(term) + COALESCE(sum(carried) * EXTRACT(EPOCH FROM (max(t) - max(f))), 0), "
            "sum(carried) * EXTRACT(EPOCH FROM (max(t) - max(f))), 0) * 1.00000000000000000000 "
            "/ NULLIF(EXTRACT(EPOCH FROM (max(t) - max(f))), 0), sum(n), COALESCE(sum(pc), 0), true "
            "FROM parts GROUP BY k HAVING sum(all_n) > 0"
        )
    elif kind == AggregationType.UNIQUE_COUNT:
        recurring = metric.recurring
        # Values: the table's rows for the subscriptions read from it (their last operation
        # before the watermark; non-recurring: only those in the period), then the raw events.
        params["vs"] = [sub for sub in marks if any(c[0] == sub for c in pieces.covered)]
        params["vf"] = [next(c[3] for c in pieces.covered if c[0] == sub) for sub in params["vs"]]
        value_key = raw_key.replace("e.properties", "r.dims").replace("p.sub", "q.sub")
        value_filters = bucket_filters
        since = "" if recurring else " AND r.last_timestamp >= q.f"
        sql = (
            f"{head}, candidates AS ("
            f"SELECT {value_key} AS k, r.value AS v, r.last_timestamp AS ts, r.last_event_id AS id, "
            "r.last_removes AS removes FROM unnest(%(vs)s::text[], %(vf)s::timestamptz[]) AS q(sub, f) "
            f"JOIN {_VALUES} r ON r.external_subscription_id = q.sub AND r.code = %(code)s{since} "
            f"WHERE true{value_filters} "
            "UNION ALL SELECT k, v, ts, id, removes FROM raw WHERE v IS NOT NULL), "
            "last_ops AS (SELECT DISTINCT ON (k, v) k, removes FROM candidates ORDER BY k, v, ts DESC, id DESC), "
            "units AS (SELECT k, count(*) FILTER (WHERE NOT removes) AS units FROM last_ops GROUP BY k), "
            "totals AS (SELECT k, sum(n) AS n, sum(pc) AS pc FROM ("
            "SELECT k, events_count AS n, precise_sum AS pc FROM buckets WHERE bucket_start >= f "
            "UNION ALL SELECT k, count(v) FILTER (WHERE ts >= f), sum(pc) FILTER (WHERE ts >= f AND v IS NOT NULL) "
            "FROM raw GROUP BY k) parts GROUP BY k) "
            "SELECT u.k, u.units, COALESCE(t.n, 0), COALESCE(t.pc, 0), true FROM units u "
            "LEFT JOIN totals t ON t.k IS NOT DISTINCT FROM u.k"
        )
    else:
        raise ValueError(f"unknown aggregation type {kind!r}")
    # The same statement checks that the watermarks read before still stand (same definition,
    # folded at least as far): a rebuild committed in between deleted the buckets it covered.
    # One row comes back even without usage (present NULL) to carry the check.
    params["gs"] = list(guard)
    params["gw"] = [guard[sub][0] for sub in guard]
    params["gd"] = [guard[sub][1] for sub in guard]
    sql = (
        "SELECT r.k, r.units, r.n, r.pc, r.present, g.standing, r.exact FROM (SELECT q.*, true AS present FROM ("
        f"{sql}) q(k, units, n, pc, exact)) r RIGHT JOIN (SELECT count(*) AS standing FROM {_WATERMARKS} w "
        "JOIN unnest(%(gs)s::text[], %(gw)s::timestamptz[], %(gd)s::text[]) AS g(sub, folded, def) "
        "ON w.external_subscription_id = g.sub WHERE w.code = %(code)s AND w.definition::text = g.def "
        "AND w.folded_until >= g.folded) g ON true"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    if not fetched or fetched[0][5] != len(guard):
        return None
    if not all(row[6] for row in fetched if row[4]):
        return _INEXACT
    answered: list[Any] = [row[:4] for row in fetched if row[4]]
    zero = Decimal(0)
    return {
        key: AggregationResult(
            units=apply_rounding(metric, zero if units is None else Decimal(units)),
            events_count=int(count or 0),
            event_values=None,
            precise_total_amount_cents=zero if precise is None else Decimal(precise),
        )
        for key, units, count, precise in answered
    }
