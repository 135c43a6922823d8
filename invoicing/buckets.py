"""Charge buckets: the slices of a charge's events that one fee prices (a charge filter's events,
or the remainder). One rule, used by the SQL aggregation (`charge_buckets`' filters and
exclusions) and for a single event (`event_bucket`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from metrics.models import BillableMetric
from metrics.selectors import event_text_value
from plans import charge_models
from plans.models import Charge, ChargeFilter

Filters = dict[str, list[str]]


@dataclass(frozen=True)
class Bucket:
    """The slice of a charge's events one fee prices: a charge filter's events (those it is the
    most specific match for), or the remainder that matches no filter (charge_filter None)."""

    charge_filter: ChargeFilter | None
    filters: Filters | None
    exclude_filters: tuple[Filters, ...]

    def key(self, metric: BillableMetric) -> tuple[Any, ...]:
        def freeze(values: Filters | None) -> tuple[Any, ...]:
            return tuple(sorted((k, tuple(v)) for k, v in (values or {}).items()))

        return (metric.pk, freeze(self.filters), tuple(freeze(x) for x in self.exclude_filters))


def _filter_values(charge_filter: ChargeFilter, metric: BillableMetric) -> Filters:
    """A filter's values with Lago's wildcard expanded to the metric filter's values for the key."""
    metric_values = {f.key: [str(v) for v in f.values] for f in metric.filters.all()}
    values: Filters = {}
    for key, allowed in (charge_filter.values or {}).items():
        allowed = [str(v) for v in allowed]
        if charge_models.ALL_FILTER_VALUES in allowed:
            allowed = metric_values.get(key, [])
        values[key] = allowed
    return values


def charge_buckets(charge: Charge) -> list[Bucket]:
    """One bucket per live filter, then the remainder (or just the charge without filters).
    An event belongs to the most specific filter it matches (most keys, first listed on a tie),
    the one rule for both SQL aggregation and single events (`event_bucket`): filter i takes the
    events matching it and none of the filters that outrank it."""
    metric = charge.billable_metric
    filters = [f for f in charge.filters.all() if f.deleted_at is None]
    if not filters:
        return [Bucket(None, None, ())]
    values = [_filter_values(f, metric) for f in filters]
    buckets = []
    for index, charge_filter in enumerate(filters):
        outranking = tuple(
            values[j]
            for j in range(len(filters))
            if j != index
            and (len(values[j]) > len(values[index]) or (len(values[j]) == len(values[index]) and j < index))
        )
        buckets.append(Bucket(charge_filter, values[index], outranking))
    buckets.append(Bucket(None, None, tuple(values)))
    return buckets


def bucket_matches(bucket: Bucket, properties: Any) -> bool:
    """Does an event with `properties` fall in `bucket`? The SQL's rule (metrics.aggregation):
    every key of the filter holds one of its values, and no outranking filter matches whole."""

    def all_match(conditions: Filters) -> bool:
        return all(event_text_value(properties, key) in set(values) for key, values in conditions.items())

    return (not bucket.filters or all_match(bucket.filters)) and not any(
        all_match(other) for other in bucket.exclude_filters
    )


def event_bucket(charge: Charge, properties: Any) -> Bucket:
    """The bucket (charge filter, or the remainder) that prices an event of `charge`."""
    buckets = charge_buckets(charge)
    return next((bucket for bucket in buckets if bucket_matches(bucket, properties)), buckets[-1])
