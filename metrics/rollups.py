"""Usage rollups: closed hours of events folded into buckets, off the ingestion path."""

# Per (external subscription, metric code) a watermark says up to which hour the buckets hold the
# events; metrics.rollup_reads combines the buckets below it with the raw events above it (and with
# the raw events of any dirty hour) and gives exactly the raw query's answer.
#
# The fold (`usage_rollups_fold`: the periodic task, and the billing run before it reads) works in
# bounded batches of pairs and hours, each one set-based statement per metric code
# (INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE): the events never travel to Python.
#
# Why an event can never be lost between the raw side and the buckets:
# 1. A fold first publishes `pending_until` (the hour it will fold up to) and commits.
# 2. It then waits for every transaction that holds a write lock on the events table at that
#    moment (pg_locks). Such a writer may have decided "not late" against the old pending mark.
#    Any writer that takes its lock later takes its trigger's snapshot later too, so it sees the
#    new mark: its event below it marks its hour dirty (migration 0005's statement trigger).
# 3. Only then does it read the events and move `folded_until`. An event it missed is either in a
#    dirty hour (read raw, refolded next time) or above `folded_until` (read raw).
# Inside an outer transaction (tests) the phases share it; that is only correct without concurrent
# writers, which tests do not have.
#
# Exactly one fold runs at a time (a session advisory lock): the periodic task skips when one is
# running, the billing run waits for it. A changed metric definition (aggregation type, field,
# the keys its filters and groups read) or a deleted/changed event voids a pair's rollups: the
# reads answer from the raw events until the fold has rebuilt them.

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from .models import (
    AggregationType,
    BillableMetric,
    Event,
    UsageFoldCursor,
    UsageRollup,
    UsageRollupDirty,
    UsageRollupValue,
    UsageWatermark,
)
from .signals import rollup_keys_requested

HOUR = timedelta(hours=1)
# Every hour bucket starts on a whole UTC hour (date_bin from the epoch).
BUCKET_ORIGIN = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"
# A (pseudo-random) key for the advisory lock that lets one fold run at a time.
_FOLD_LOCK_KEY = 0x7011_6A7E_F01D
# Events younger than this are scanned again by the next discovery (ids are not committed in id
# order; discovery only finds new pairs: a pair it misses is read raw, never wrongly).
_DISCOVERY_SETTLE = timedelta(minutes=1)

_EVENTS = Event._meta.db_table
_ROLLUPS = UsageRollup._meta.db_table
_VALUES = UsageRollupValue._meta.db_table
_WATERMARKS = UsageWatermark._meta.db_table
_DIRTY = UsageRollupDirty._meta.db_table


@dataclass
class FoldReport:
    discovered_events: int = 0
    rebuilt_pairs: int = 0
    folded_pairs: int = 0
    refolded_buckets: int = 0
    busy: bool = False  # another fold held the lock (nothing done)
    writers_timed_out: int = 0  # batches left for the next run: a writer stayed open too long
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "discovered_events": self.discovered_events,
            "rebuilt_pairs": self.rebuilt_pairs,
            "folded_pairs": self.folded_pairs,
            "refolded_buckets": self.refolded_buckets,
            "busy": self.busy,
            "writers_timed_out": self.writers_timed_out,
        }


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment` (a local hour need not start on one: +05:30)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def rollup_keys(metric: BillableMetric) -> list[str]:
    """The property keys a metric's buckets keep: its filters' keys and those its charges group
    by (asked of the apps to the right through `rollup_keys_requested`)."""
    keys = {f.key for f in metric.filters.all()}
    for _, answered in rollup_keys_requested.send(sender=BillableMetric, metric=metric):
        keys.update(str(key) for key in answered or ())
    return sorted(keys)


def rollup_definition(metric: BillableMetric, keys: Sequence[str]) -> dict[str, Any]:
    """What a pair's buckets are folded for; the reads use them only for this very definition."""
    field_name = "" if metric.aggregation_type == AggregationType.COUNT else metric.field_name
    return {"type": str(metric.aggregation_type), "field": field_name, "keys": list(keys), "version": 1}


def definition_matches(stored: Any, metric: BillableMetric, needed_keys: set[str]) -> bool:
    """Can buckets folded for `stored` answer a read of `metric` filtering/grouping on these keys?"""
    if isinstance(stored, str):  # Django's psycopg setup leaves json as text
        stored = json.loads(stored)
    if not isinstance(stored, dict):
        return False
    field_name = "" if metric.aggregation_type == AggregationType.COUNT else metric.field_name
    return (
        stored.get("version") == 1
        and stored.get("type") == metric.aggregation_type
        and stored.get("field") == field_name
        and needed_keys <= set(stored.get("keys") or ())
    )


# --- the service ---------------------------------------------------------------------------------


def usage_rollups_fold(
    *,
    now: datetime | None = None,
    grace: timedelta = timedelta(minutes=5),
    max_span: timedelta = timedelta(days=1),
    pairs_per_batch: int = 500,
    discovery_batch: int = 200_000,
    dirty_batch: int = 500,
    max_batches: int = 1_000,
    wait: bool = False,
    writer_timeout: float = 10.0,
) -> FoldReport:
    """Fold every (subscription, code) pair of a live metric up to the last hour closed `grace`
    ago, in batches of `pairs_per_batch` pairs and at most `max_span` of events per pair and
    statement, then refold dirty hours. `wait`: wait for a running fold instead of skipping."""
    report = FoldReport()
    if connection.vendor != "postgresql":
        return report  # SQLite (the demo database) reads the raw events
    with _fold_lock(wait=wait) as acquired:
        if not acquired:
            report.busy = True
            return report
        moment = now or timezone.now()
        target = floor_hour(moment - grace)
        metrics = {m.code: m for m in BillableMetric.live.prefetch_related("filters")}
        if not metrics:
            return report
        definitions = {code: rollup_definition(m, rollup_keys(m)) for code, m in metrics.items()}
        report.discovered_events = _discover(list(metrics), discovery_batch, max_batches)
        report.rebuilt_pairs = _rebuild_changed(definitions, pairs_per_batch, max_batches)
        # Passes over the pairs behind the target, each moving a pair by at most max_span, until
        # a pass finds none (or only pairs whose writers stayed open).
        after, progressed = 0, False
        for _ in range(max_batches):
            batch = _pairs_to_fold(definitions, target, after, pairs_per_batch)
            if not batch:
                if after == 0 or not progressed:
                    break
                after, progressed = 0, False
                continue
            after = batch[-1].watermark_id
            folded = _fold_batch(batch, metrics, definitions, target, max_span, writer_timeout)
            if folded is None:
                report.writers_timed_out += 1
                continue
            report.folded_pairs += folded
            progressed = progressed or folded > 0
        for _ in range(max_batches):
            refolded = _refold_dirty(metrics, definitions, dirty_batch)
            report.refolded_buckets += refolded
            if refolded < dirty_batch:
                break
    return report


def usage_rollups_caught_up(*, now: datetime | None = None, grace: timedelta = timedelta(minutes=5)) -> bool:
    """True when one more fold would find nothing to do (the bench and tests fold until then):
    every watermark at the target, and no settled event past the discovery cursor (a fold
    discovers at most `discovery_batch` events, and stops at the first one still settling)."""
    if connection.vendor != "postgresql":
        return True  # SQLite folds nothing (usage_rollups_fold)
    target = floor_hour((now or timezone.now()) - grace)
    if UsageWatermark.objects.filter(folded_until__lt=target).exists():
        return False
    if UsageWatermark.objects.filter(folded_until__isnull=True).exists():
        return False
    position = UsageFoldCursor.objects.filter(name="events").values_list("last_event_id", flat=True).first() or 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {_EVENTS} WHERE id > %s AND created_at < now() - %s::interval)",
            [position, f"{int(_DISCOVERY_SETTLE.total_seconds())} seconds"],
        )
        return not cursor.fetchone()[0]


@contextmanager
def _fold_lock(*, wait: bool) -> Iterator[bool]:
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_lock(%s)", [_FOLD_LOCK_KEY])
            acquired = True
        else:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [_FOLD_LOCK_KEY])
            acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_FOLD_LOCK_KEY])


# --- discovery and rebuilds ----------------------------------------------------------------------

_DISCOVER_SQL = f"""
WITH scanned AS MATERIALIZED (
    SELECT id, external_subscription_id, code, created_at FROM {_EVENTS}
    WHERE id > %(cursor)s ORDER BY id LIMIT %(limit)s
), pairs AS (
    INSERT INTO {_WATERMARKS} (external_subscription_id, code, folded_until, pending_until, definition, updated_at)
    SELECT DISTINCT external_subscription_id, code, NULL::timestamptz, NULL::timestamptz, NULL::jsonb, now()
    FROM scanned WHERE code = ANY(%(codes)s::text[])
    ON CONFLICT (external_subscription_id, code) DO NOTHING
)
SELECT count(*), max(id), min(id) FILTER (WHERE created_at >= now() - %(settle)s::interval) FROM scanned
"""


def _discover(codes: list[str], limit: int, max_batches: int) -> int:
    """Watermark rows for the pairs of events stored since the cursor (a primary-key range scan)."""
    cursor_row, _ = UsageFoldCursor.objects.get_or_create(name="events")
    position = cursor_row.last_event_id
    scanned_total = 0
    for _ in range(max_batches):
        with connection.cursor() as cursor:
            cursor.execute(
                _DISCOVER_SQL,
                {
                    "cursor": position,
                    "limit": limit,
                    "codes": codes,
                    "settle": f"{int(_DISCOVERY_SETTLE.total_seconds())} seconds",
                },
            )
            scanned, highest, first_young = cursor.fetchone()
        scanned_total += scanned
        if not scanned:
            break
        settled = highest if first_young is None else first_young - 1
        if settled <= position:
            break
        position = settled
        UsageFoldCursor.objects.filter(name="events").update(last_event_id=position)
        if scanned < limit or first_young is not None:
            break
    return scanned_total


def _definitions_params(definitions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    codes = list(definitions)
    return {"codes": codes, "defs": [json.dumps(definitions[c]) for c in codes]}


_REBUILD_SQL = f"""
WITH wanted AS (SELECT * FROM unnest(%(codes)s::text[], %(defs)s::jsonb[]) AS d(code, def)),
stale AS (
    SELECT w.id, w.external_subscription_id AS sub, w.code, d.def FROM {_WATERMARKS} w JOIN wanted d ON d.code = w.code
    WHERE w.definition IS DISTINCT FROM d.def ORDER BY w.id LIMIT %(limit)s FOR UPDATE OF w
), gone_rollups AS (
    DELETE FROM {_ROLLUPS} r USING stale s WHERE r.external_subscription_id = s.sub AND r.code = s.code
), gone_values AS (
    DELETE FROM {_VALUES} r USING stale s WHERE r.external_subscription_id = s.sub AND r.code = s.code
), gone_dirty AS (
    DELETE FROM {_DIRTY} r USING stale s WHERE r.external_subscription_id = s.sub AND r.code = s.code
)
UPDATE {_WATERMARKS} w SET definition = s.def, folded_until = NULL, pending_until = NULL, updated_at = now()
FROM stale s WHERE w.id = s.id
"""


def _rebuild_changed(definitions: dict[str, dict[str, Any]], limit: int, max_batches: int) -> int:
    """Pairs folded for another definition (or voided by a deleted event) start again from
    nothing: their buckets are deleted and the reads answer raw until they are folded again."""
    total = 0
    for _ in range(max_batches):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_REBUILD_SQL, {**_definitions_params(definitions), "limit": limit})
            count = cursor.rowcount
        total += count
        if count < limit:
            break
    return total


# --- folding closed hours ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pair:
    watermark_id: int
    external_subscription_id: str
    code: str
    folded_until: datetime | None
    first_timestamp: datetime | None  # of the first event at or after folded_until


_PAIRS_SQL = f"""
WITH wanted AS (SELECT * FROM unnest(%(codes)s::text[], %(defs)s::jsonb[]) AS d(code, def))
SELECT w.id, w.external_subscription_id, w.code, w.folded_until, first.ts
FROM {_WATERMARKS} w JOIN wanted d ON d.code = w.code AND w.definition = d.def
LEFT JOIN LATERAL (
    SELECT e.timestamp AS ts FROM {_EVENTS} e
    WHERE e.external_subscription_id = w.external_subscription_id AND e.code = w.code
      AND e.timestamp >= COALESCE(w.folded_until, '-infinity'::timestamptz)
    ORDER BY e.timestamp LIMIT 1
) first ON true
WHERE (w.folded_until IS NULL OR w.folded_until < %(target)s) AND w.id > %(after)s
ORDER BY w.id LIMIT %(limit)s
"""


def _pairs_to_fold(definitions: dict[str, dict[str, Any]], target: datetime, after: int, limit: int) -> list[_Pair]:
    with connection.cursor() as cursor:
        cursor.execute(
            _PAIRS_SQL, {**_definitions_params(definitions), "target": target, "after": after, "limit": limit}
        )
        return [_Pair(*row) for row in cursor.fetchall()]


def _next_range(pair: _Pair, target: datetime, max_span: timedelta) -> tuple[datetime, datetime]:
    """[from, to): from the watermark (or the first event's hour) to at most max_span past the
    first event still to fold (empty hours before it cost an empty index range, not a step)."""
    first_hour = floor_hour(pair.first_timestamp) if pair.first_timestamp is not None else target
    start = pair.folded_until if pair.folded_until is not None else min(first_hour, target)
    end = min(target, max(first_hour, start) + max_span)
    return start, max(start, end)


def _fold_batch(
    batch: list[_Pair],
    metrics: dict[str, BillableMetric],
    definitions: dict[str, dict[str, Any]],
    target: datetime,
    max_span: timedelta,
    writer_timeout: float,
) -> int | None:
    ranges = {pair.watermark_id: _next_range(pair, target, max_span) for pair in batch}
    ids = list(ranges)
    with transaction.atomic(), connection.cursor() as cursor:  # phase 1: publish, commit
        cursor.execute(
            f"UPDATE {_WATERMARKS} w SET pending_until = GREATEST(w.pending_until, r.until), updated_at = now() "
            "FROM unnest(%s::bigint[], %s::timestamptz[]) AS r(id, until) WHERE w.id = r.id",
            [ids, [ranges[i][1] for i in ids]],
        )
    if not wait_for_event_writers(writer_timeout):  # phase 2
        return None
    by_code: dict[str, list[tuple[str, datetime, datetime]]] = defaultdict(list)
    for pair in batch:
        start, end = ranges[pair.watermark_id]
        if end > start:
            by_code[pair.code].append((pair.external_subscription_id, start, end))
    with transaction.atomic(), connection.cursor() as cursor:  # phase 3: fold, move the watermark
        for code, spans in by_code.items():
            metric, keys = metrics[code], definitions[code]["keys"]
            _fold_spans(cursor, metric, keys, spans, replace=True)
        cursor.execute(
            f"UPDATE {_WATERMARKS} w SET folded_until = r.until, updated_at = now() "
            "FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[]) AS r(id, until, code) "
            "WHERE w.id = r.id AND w.pending_until >= r.until AND w.definition = (%s::jsonb -> r.code)",
            [ids, [ranges[i][1] for i in ids], [p.code for p in batch], json.dumps(definitions)],
        )
        return cursor.rowcount


_WRITERS_SQL = f"""
SELECT DISTINCT l.virtualtransaction FROM pg_locks l
WHERE l.locktype = 'relation' AND l.relation = '{_EVENTS}'::regclass
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.pid IS DISTINCT FROM pg_backend_pid()
  AND l.mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
"""


def wait_for_event_writers(timeout: float) -> bool:
    """Wait until every transaction now holding a write lock on the events table has ended
    (phase 2 of the module docstring). False when one is still open after `timeout` seconds.
    Public: the billing run waits the same way after publishing its billed-through instants
    (invoicing.corrections.recording.billed_through_publish)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        cursor.execute(_WRITERS_SQL)
        waiting = [row[0] for row in cursor.fetchall()]
        while waiting:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
            cursor.execute(
                "SELECT virtualxid FROM pg_locks WHERE locktype = 'virtualxid' AND virtualxid = ANY(%s::text[])",
                [waiting],
            )
            waiting = [row[0] for row in cursor.fetchall()]
    return True


def _fold_source(metric: BillableMetric, keys: Sequence[str], params: dict[str, Any]) -> str:
    """The events of the spans (sub, a, b) as (sub, bucket, dims, v, pc, ts, id, removes); v is
    the metric's value exactly as the raw aggregation reads it (NULL: skipped)."""
    from .aggregation import _SqlBuilder

    builder = _SqlBuilder(metric, "shared", None, None, (), False)
    params.update(builder.params)
    dims = []
    for index, key in enumerate(keys):
        params[f"dk{index}"] = key
        dims.append(f"%(dk{index})s::text, e.properties ->> %(dk{index})s")
    dims_sql = f"jsonb_build_object({', '.join(dims)})" if dims else "'{}'::jsonb"
    value = "" if metric.aggregation_type == AggregationType.COUNT else ", e.properties -> %(field)s AS j"
    return (
        f"SELECT sub, bucket, dims, {builder.value_sql()} AS v, pc, ts, id, removes FROM ("
        f"SELECT p.sub, date_bin('1 hour', e.timestamp, {BUCKET_ORIGIN}) AS bucket, {dims_sql} AS dims, "
        f"e.precise_total_amount_cents AS pc, e.id, e.timestamp AS ts{value}, "
        "COALESCE(e.properties ->> 'operation_type' = 'remove', false) AS removes, clock_timestamp() AS once "
        "FROM unnest(%(subs)s::text[], %(froms)s::timestamptz[], %(tos)s::timestamptz[]) AS p(sub, a, b) "
        "CROSS JOIN LATERAL (SELECT e.id, e.timestamp, e.properties, e.precise_total_amount_cents "
        f"FROM {_EVENTS} e WHERE e.external_subscription_id = p.sub AND e.code = %(code)s "
        "AND e.timestamp >= p.a AND e.timestamp < p.b OFFSET 0) e) x"
    )


def _fold_spans(
    cursor: Any, metric: BillableMetric, keys: Sequence[str], spans: list[tuple[str, datetime, datetime]], replace: bool
) -> None:
    """(Re)build the buckets of these [a, b) spans (whole hours) from their events; merge their
    unique-count values. `replace`: delete the spans' buckets first (a refold)."""
    params: dict[str, Any] = {
        "subs": [s for s, _, _ in spans],
        "froms": [a for _, a, _ in spans],
        "tos": [b for _, _, b in spans],
    }
    source = _fold_source(metric, keys, params)
    if replace:
        cursor.execute(
            f"DELETE FROM {_ROLLUPS} r USING unnest(%(subs)s::text[], %(froms)s::timestamptz[], "
            "%(tos)s::timestamptz[]) AS p(sub, a, b) WHERE r.external_subscription_id = p.sub "
            "AND r.code = %(code)s AND r.bucket_start >= p.a AND r.bucket_start < p.b",
            {**params, "code": metric.code},
        )
    kind = metric.aggregation_type
    numeric = kind not in (AggregationType.UNIQUE_COUNT, AggregationType.COUNT)
    value_sum = "sum(v)" if kind in (AggregationType.SUM, AggregationType.WEIGHTED_SUM) else "NULL::numeric"
    value_max = "max(v)" if kind == AggregationType.MAX else "NULL::numeric"
    value_time = "sum(v * EXTRACT(EPOCH FROM ts))" if kind == AggregationType.WEIGHTED_SUM else "NULL::numeric"
    latest_cte, latest_join, latest_cols = "", "", "NULL::timestamptz, NULL::bigint, NULL::numeric"
    if kind == AggregationType.LATEST and numeric:
        latest_cte = (
            ", latest AS (SELECT DISTINCT ON (sub, bucket, dims) sub, bucket, dims, ts, id, v FROM ev "
            "WHERE v IS NOT NULL ORDER BY sub, bucket, dims, ts DESC, id DESC)"
        )
        latest_join = "JOIN latest l ON l.sub = t.sub AND l.bucket = t.bucket AND l.dims = t.dims"
        latest_cols = "l.ts, l.id, l.v"
    cursor.execute(
        f"WITH ev AS MATERIALIZED ({source}), totals AS (SELECT sub, bucket, dims, count(v) AS n, "
        f"{value_sum} AS s, {value_max} AS m, {value_time} AS vt, sum(pc) FILTER (WHERE v IS NOT NULL) AS pc "
        f"FROM ev GROUP BY sub, bucket, dims HAVING count(v) > 0){latest_cte} "
        f"INSERT INTO {_ROLLUPS} (external_subscription_id, code, bucket_start, dims, dims_hash, events_count, "
        "value_sum, value_max, value_time_sum, precise_sum, latest_timestamp, latest_event_id, latest_value) "
        f"SELECT t.sub, %(code)s, t.bucket, t.dims, md5(t.dims::text)::uuid, t.n, t.s, t.m, t.vt, t.pc, "
        f"{latest_cols} FROM totals t {latest_join} "
        "ON CONFLICT (external_subscription_id, code, bucket_start, dims_hash) DO UPDATE SET "
        "dims = EXCLUDED.dims, events_count = EXCLUDED.events_count, value_sum = EXCLUDED.value_sum, "
        "value_max = EXCLUDED.value_max, value_time_sum = EXCLUDED.value_time_sum, "
        "precise_sum = EXCLUDED.precise_sum, latest_timestamp = EXCLUDED.latest_timestamp, "
        "latest_event_id = EXCLUDED.latest_event_id, latest_value = EXCLUDED.latest_value",
        params,
    )
    if kind == AggregationType.UNIQUE_COUNT:
        old = _VALUES
        cursor.execute(
            f"WITH ev AS MATERIALIZED ({source}), "
            "firsts AS (SELECT sub, dims, v, min(ts) AS first_ts FROM ev WHERE v IS NOT NULL GROUP BY sub, dims, v), "
            "lasts AS (SELECT DISTINCT ON (sub, dims, v) sub, dims, v, ts, id, removes FROM ev "
            "WHERE v IS NOT NULL ORDER BY sub, dims, v, ts DESC, id DESC) "
            f"INSERT INTO {_VALUES} (external_subscription_id, code, dims, dims_hash, value, value_hash, "
            "first_timestamp, last_timestamp, last_event_id, last_removes) "
            "SELECT l.sub, %(code)s, l.dims, md5(l.dims::text)::uuid, l.v, md5(l.v)::uuid, f.first_ts, l.ts, l.id, "
            "l.removes FROM lasts l JOIN firsts f ON f.sub = l.sub AND f.dims = l.dims AND f.v = l.v "
            "ON CONFLICT (external_subscription_id, code, dims_hash, value_hash) DO UPDATE SET "
            f"first_timestamp = LEAST({old}.first_timestamp, EXCLUDED.first_timestamp), "
            f"last_removes = CASE WHEN (EXCLUDED.last_timestamp, EXCLUDED.last_event_id) > "
            f"({old}.last_timestamp, {old}.last_event_id) THEN EXCLUDED.last_removes ELSE {old}.last_removes END, "
            f"last_event_id = CASE WHEN (EXCLUDED.last_timestamp, EXCLUDED.last_event_id) > "
            f"({old}.last_timestamp, {old}.last_event_id) THEN EXCLUDED.last_event_id ELSE {old}.last_event_id END, "
            f"last_timestamp = GREATEST({old}.last_timestamp, EXCLUDED.last_timestamp)",
            params,
        )


# --- dirty hours ---------------------------------------------------------------------------------

_DIRTY_SQL = f"""
WITH wanted AS (SELECT * FROM unnest(%(codes)s::text[], %(defs)s::jsonb[]) AS d(code, def))
SELECT dirty.id, dirty.external_subscription_id, dirty.code, dirty.bucket_start
FROM {_DIRTY} dirty
JOIN {_WATERMARKS} w ON w.external_subscription_id = dirty.external_subscription_id AND w.code = dirty.code
JOIN wanted d ON d.code = w.code AND w.definition = d.def
WHERE dirty.bucket_start < w.folded_until
ORDER BY dirty.external_subscription_id, dirty.code, dirty.bucket_start
LIMIT %(limit)s FOR UPDATE OF dirty SKIP LOCKED
"""


def _refold_dirty(metrics: dict[str, BillableMetric], definitions: dict[str, dict[str, Any]], limit: int) -> int:
    """Refold a batch of dirty hours below their watermark. Their rows stay locked until the
    commit: a late writer of the same hour waits, then marks it dirty again (it was not read)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_DIRTY_SQL, {**_definitions_params(definitions), "limit": limit})
        rows = cursor.fetchall()
        by_code: dict[str, list[tuple[str, datetime, datetime]]] = defaultdict(list)
        for _, sub, code, bucket in rows:
            by_code[code].append((sub, bucket, bucket + HOUR))
        for code, spans in by_code.items():
            _fold_spans(cursor, metrics[code], definitions[code]["keys"], spans, replace=True)
        if rows:
            cursor.execute(f"DELETE FROM {_DIRTY} WHERE id = ANY(%s::bigint[])", [[row[0] for row in rows]])
    return len(rows)
