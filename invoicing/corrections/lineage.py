"""Lineage: the events each fee counted, written in SQL (one INSERT ... SELECT per invoice) when
an invoice is finalized, and the late events of a period (those its fees did not count).

An original fee's events are one row, their ids as an array (FeeEventSet); a correction's late
events are a row each (FeeEvent: unique per line and event, the arbiter between racing
corrections), selected without the events of their line's set."""

# A fee's events are selected by metrics.lineage with the very filters, exclusions, group values
# and time range the fee's aggregation used (`period_fee_scope`), so the units over them are the fee's.
# The selects of every fee of an invoice are joined by UNION ALL into one statement: the events
# never travel to Python.

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from metrics.lineage import carries_in, counted_events_many_sql, counted_events_sql
from plans import charge_models
from plans.models import Charge

from .. import billing
from ..buckets import charge_buckets
from ..models import Fee, FeeType
from ..windows import billing_start
from .models import BilledThrough, FeeEvent, FeeEventSet

_LINEAGE = FeeEvent._meta.db_table
_SETS = FeeEventSet._meta.db_table
_BILLED = BilledThrough._meta.db_table


def _counted_cte(source: str) -> str:
    """A CTE `counted` (root, id): the events in the sets of the roots `source` names, unnested
    once (an anti-join against it is a hash join, not an array scan per event)."""
    return (
        f"counted AS MATERIALIZED (SELECT s.fee_id AS root, u.id FROM {_SETS} s "
        f"CROSS JOIN LATERAL unnest(s.event_ids) AS u(id) WHERE s.fee_id IN (SELECT root FROM {source}))"
    )


@dataclass(frozen=True)
class Scope:
    """What one fee aggregated: its charge's metric over the subscription's usage period, its
    bucket's filters and its group's values."""

    charge: Charge
    external_subscription_id: str
    usage_from: datetime
    to_datetime: datetime
    filters: Any
    exclude_filters: Any
    group: dict[str, str | None] | None


def is_true_up(fee: Fee) -> bool:
    return bool((fee.amount_details or {}).get("true_up"))


def period_fee_scope(fee: Fee) -> Scope | None:
    """The scope of a period-end charge fee (None for any other fee): its dates are its usage
    period's (billing.charge_fees), its charge and subscription loaded with it."""
    if fee.fee_type != FeeType.CHARGE or fee.pay_in_advance or is_true_up(fee) or fee.charge_id is None:
        return None
    charge, subscription = fee.charge, fee.subscription
    if charge is None or subscription is None or fee.from_datetime is None or fee.to_datetime is None:
        return None
    bucket = next(
        (
            b
            for b in charge_buckets(charge)
            if (b.charge_filter.pk if b.charge_filter else None) == fee.charge_filter_id
        ),
        None,
    )
    if bucket is None:
        return None
    keys = billing.grouping_keys(charge_models.properties_for(charge, bucket.charge_filter))
    group = None
    if keys:
        names = [keys] if isinstance(keys, str) else list(keys)
        group = {name: (fee.grouped_by or {}).get(name) for name in names}
    return Scope(
        charge=charge,
        external_subscription_id=subscription.external_id,
        usage_from=max(fee.from_datetime, billing_start(subscription)),
        to_datetime=fee.to_datetime,
        filters=bucket.filters,
        exclude_filters=bucket.exclude_filters,
        group=group,
    )


@dataclass(frozen=True)
class Entry:
    """One fee's events as rows (tag, fee, root, event id): `tag` names the entry in answers,
    `fee` the fee the rows are written for (None: handled, no fee), `root` the original line."""

    tag: int
    fee_id: Any
    root_id: Any
    scope: Scope


def _shape(entry: Entry) -> tuple[Any, ...]:
    """What an entry's select depends on besides its subscription and dates: entries of one
    shape are selected by one join (a billing run's batch: every subscription on a plan)."""
    scope = entry.scope
    carried_in = carries_in(scope.charge.billable_metric, prorated=billing.is_prorated(scope.charge))
    described = json.dumps([scope.filters, scope.exclude_filters, scope.group], sort_keys=True, default=str)
    return (scope.charge.pk, scope.charge.billable_metric_id, described, carried_in)


def union_sql(entries: Sequence[Entry]) -> tuple[str, dict[str, Any]]:
    """SELECT tag, fee, root, id, in_period over every entry's counted events (UNION ALL): one
    select per shape (each subscription once in it; a repeat gets a select of its own)."""
    groups: dict[tuple[Any, ...], list[Entry]] = {}
    alone: list[Entry] = []
    for entry in entries:
        group = groups.setdefault(_shape(entry), [])
        if any(e.scope.external_subscription_id == entry.scope.external_subscription_id for e in group):
            alone.append(entry)
        else:
            group.append(entry)
    parts: list[str] = []
    params: dict[str, Any] = {}
    for n, group in enumerate([*groups.values(), *([entry] for entry in alone)]):
        scope = group[0].scope
        metric = scope.charge.billable_metric
        shared: dict[str, Any] = {
            "filters": scope.filters,
            "exclude_filters": scope.exclude_filters,
            "group": scope.group,
            "carried_in": carries_in(metric, prorated=billing.is_prorated(scope.charge)),
            "prefix": f"l{n}_",
        }
        if len(group) == 1:
            entry = group[0]
            sql, entry_params = counted_events_sql(
                metric,
                external_subscription_id=scope.external_subscription_id,
                from_datetime=scope.usage_from,
                to_datetime=scope.to_datetime,
                **shared,
            )
            params.update(entry_params)
            params[f"l{n}_tag"], params[f"l{n}_fee"], params[f"l{n}_root"] = entry.tag, entry.fee_id, entry.root_id
            parts.append(
                f"SELECT %(l{n}_tag)s::int AS tag, %(l{n}_fee)s::uuid AS fee, %(l{n}_root)s::uuid AS root, "
                f"id, in_period FROM ({sql}) s{n}"
            )
            continue
        sql, group_params = counted_events_many_sql(
            metric,
            periods=[(e.scope.external_subscription_id, e.scope.usage_from, e.scope.to_datetime) for e in group],
            **shared,
        )
        params.update(group_params)
        params[f"l{n}_msubs"] = [e.scope.external_subscription_id for e in group]
        params[f"l{n}_tags"] = [e.tag for e in group]
        params[f"l{n}_fees"] = [e.fee_id for e in group]
        params[f"l{n}_roots"] = [e.root_id for e in group]
        parts.append(
            f"SELECT m{n}.tag, m{n}.fee, m{n}.root, s{n}.id, s{n}.in_period FROM ({sql}) s{n} "
            f"JOIN unnest(%(l{n}_msubs)s::text[], %(l{n}_tags)s::int[], %(l{n}_fees)s::uuid[], "
            f"%(l{n}_roots)s::uuid[]) AS m{n}(sub, tag, fee, root) ON m{n}.sub = s{n}.sub"
        )
    return " UNION ALL ".join(parts), params


def lineage_insert_sql(
    entries: Sequence[Entry], *, correction_id: Any = None, billed_through: Mapping[str, datetime] | None = None
) -> tuple[str, str, dict[str, Any]]:
    """lineage_insert's statement as (CTEs, final SELECT, named parameters): the period run joins
    it to the invoice's own insert (billing_project.bulk.Tail), one statement for both."""
    sql, params = union_sql(entries)
    params["correction"] = correction_id
    billed = ""
    if billed_through:
        params["billed_subs"], params["billed_until"] = list(billed_through), list(billed_through.values())
        billed = (
            f", billed AS (INSERT INTO {_BILLED} (external_subscription_id, billed_until) "
            "SELECT * FROM unnest(%(billed_subs)s::text[], %(billed_until)s::timestamptz[]) ORDER BY 1 "
            "ON CONFLICT (external_subscription_id) DO UPDATE "
            f"SET billed_until = GREATEST({_BILLED}.billed_until, EXCLUDED.billed_until))"
        )
    if correction_id is None:
        # An original invoice's fees (root = fee): a set per fee. Once per fee (its primary key).
        if any(entry.fee_id != entry.root_id for entry in entries):
            raise ValueError("lineage: an original fee is its own line (root)")
        written = (
            f"written AS (INSERT INTO {_SETS} (fee_id, event_ids) "
            "SELECT fee, array_agg(id ORDER BY id) FROM src WHERE fee IS NOT NULL GROUP BY fee "
            "ON CONFLICT (fee_id) DO NOTHING)"
        )
    else:
        # A correction's late events: a row each, none its line's set holds, none already
        # counted for the line (the unique (root fee, event)).
        written = (
            f"{_counted_cte('src')}, written AS ("
            f"INSERT INTO {_LINEAGE} (fee_id, root_fee_id, event_id, correction_id) "
            "SELECT src.fee, src.root, src.id, %(correction)s::uuid FROM src "
            "LEFT JOIN counted c ON c.root = src.root AND c.id = src.id WHERE c.id IS NULL "
            "ON CONFLICT (root_fee_id, event_id) DO NOTHING)"
        )
    ctes = f"src AS MATERIALIZED ({sql}), {written}{billed}"
    return ctes, "SELECT tag, count(*) FILTER (WHERE in_period) FROM src GROUP BY tag", params


def lineage_counts(rows: Sequence[tuple[Any, ...]]) -> dict[int, int]:
    """lineage_insert_sql's answer: {tag: the period's own events it selected}."""
    return {int(tag): int(count) for tag, count in rows}


def lineage_insert(
    entries: Sequence[Entry], *, correction_id: Any = None, billed_through: Mapping[str, datetime] | None = None
) -> dict[int, int]:
    """Write the entries' events (one statement): an original invoice's fees (no correction)
    each as its set, a correction's as rows, where an event already counted for its root line
    (in the line's set, or a row: the unique (root fee, event)) is left alone.
    Answers, per entry's tag, how many of the period's own events it selected (the figure a
    fee's events_count must equal). `billed_through` {external subscription id: instant} moves
    those subscriptions' billed-through instants forward in the same statement."""
    if not entries or connection.vendor != "postgresql":
        return {}
    ctes, select, params = lineage_insert_sql(entries, correction_id=correction_id, billed_through=billed_through)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {ctes} {select}", params)
        return lineage_counts(cursor.fetchall())


@dataclass(frozen=True)
class LateEvents:
    """The events the entries' scopes hold that their root lines never counted."""

    count_by_tag: dict[int, int]
    digest: str  # md5 of the sorted distinct event ids ("" when none)
    count: int


def late_events(entries: Sequence[Entry], *, ignoring_correction: Any = None) -> LateEvents:
    """Late events per entry, in one statement (the rows of `ignoring_correction`, a draft about
    to be refreshed, do not count as counted)."""
    if not entries or connection.vendor != "postgresql":
        return LateEvents({}, "", 0)
    sql, params = union_sql(entries)
    params["ignoring"] = ignoring_correction
    late = (
        "SELECT x.tag, x.id FROM x LEFT JOIN counted c ON c.root = x.root AND c.id = x.id "
        f"WHERE c.id IS NULL AND NOT EXISTS (SELECT 1 FROM {_LINEAGE} fe "
        "WHERE fe.root_fee_id = x.root AND fe.event_id = x.id "
        "AND (%(ignoring)s::uuid IS NULL OR fe.correction_id IS DISTINCT FROM %(ignoring)s::uuid))"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH x AS MATERIALIZED ({sql}), {_counted_cte('x')}, late AS MATERIALIZED ({late}) "
            "SELECT tag, count(*), NULL::text FROM late GROUP BY tag "
            "UNION ALL SELECT -1, count(DISTINCT id), "
            "md5(string_agg(DISTINCT id::text, ',' ORDER BY id::text)) FROM late",
            params,
        )
        rows = cursor.fetchall()
    counts = {int(tag): int(n) for tag, n, _ in rows if tag >= 0}
    total = next((int(n) for tag, n, _ in rows if tag == -1), 0)
    digest = next((d for tag, _, d in rows if tag == -1), None) or ""
    return LateEvents(counts, digest if total else "", total)
