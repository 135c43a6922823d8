"""hypothesis: for random event sets, each aggregation (SQL on PostgreSQL, the Python fallback on
SQLite) equals a plain-Python reference written here from the definitions, independently."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics.aggregation import aggregate, aggregate_grouped, aggregate_subscriptions
from metrics.models import BillableMetric, Event

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)
CODE = "metric"
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


@dataclass
class Row:
    sub: str
    code: str
    hour: int  # hours after START; ties on purpose
    properties: dict[str, Any]


values = st.one_of(
    st.integers(-50, 50),
    st.decimals(min_value=-100, max_value=100, places=2, allow_nan=False).map(str),
    st.sampled_from(["abc", "", None, True, "1,5"]),  # skipped (a missing key: test_aggregation)
)
rows = st.lists(
    st.builds(
        Row,
        sub=st.sampled_from(["s1", "s1", "s1", "s2"]),
        code=st.sampled_from([CODE, CODE, CODE, "other"]),
        hour=st.integers(-2, 10).map(lambda n: 3 * n),  # few distinct instants: many ties
        properties=st.fixed_dictionaries(
            {"v": values, "u": st.sampled_from(["a", "b", "c", "d", 1])},
            optional={
                "operation_type": st.sampled_from(["add", "remove", "remove", "other"]),
                "region": st.sampled_from(["eu", "us"]),
            },
        ),
    ),
    min_size=8,
    max_size=40,
)


def store(events: list[Row]) -> None:
    Event.objects.all().delete()
    Event.objects.bulk_create(
        [
            Event(
                transaction_id=f"t{i}",
                external_subscription_id=row.sub,
                code=row.code,
                timestamp=START + row.hour * HOUR,
                properties=row.properties,
            )
            for i, row in enumerate(events)
        ]
    )


def number(properties: dict[str, Any]) -> Fraction | None:
    value = properties.get("v")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, str) and NUMBER.match(value):
        return Fraction(Decimal(value))
    return None


def reference(kind: str, recurring: bool, events: list[Row], sub: str, start: int, end: int, region: str | None):
    """(units, events_count) from the definitions; hours are relative to START."""
    mine = [
        (row.hour, i, row.properties)
        for i, row in enumerate(events)
        if row.sub == sub and row.code == CODE and (region is None or row.properties.get("region") == region)
    ]
    mine.sort(key=lambda item: (item[0], item[1]))
    in_period = [item for item in mine if start <= item[0] < end]
    if kind == "count_agg":
        return Fraction(len(in_period)), len(in_period)
    if kind == "unique_count_agg":
        scope = [item for item in mine if item[0] < end] if recurring else in_period
        scope = [item for item in scope if item[2].get("u") is not None]
        state: dict[str, bool] = {}
        for _, _, properties in scope:
            state[str(properties["u"])] = properties.get("operation_type") != "remove"
        return Fraction(sum(state.values())), sum(1 for item in in_period if item[2].get("u") is not None)
    numbers = [(hour, number(p)) for hour, _, p in in_period if number(p) is not None]
    if kind == "sum_agg":
        return sum((n for _, n in numbers), Fraction(0)), len(numbers)
    if kind == "max_agg":
        return (max(n for _, n in numbers) if numbers else Fraction(0)), len(numbers)
    if kind == "latest_agg":
        return (numbers[-1][1] if numbers else Fraction(0)), len(numbers)
    # weighted_sum_agg: integrate the running total hour by hour.
    total = Fraction(0)
    if recurring:
        total = sum((number(p) for hour, _, p in mine if hour < start and number(p) is not None), Fraction(0))
    area = Fraction(0)
    for hour in range(start, end):
        total += sum((n for h, n in numbers if h == hour), Fraction(0))
        area += total
    return area / (end - start), len(numbers)


def metric_for(kind: str, recurring: bool) -> BillableMetric:
    return BillableMetric(
        code=CODE,
        aggregation_type=kind,
        field_name={"count_agg": "", "unique_count_agg": "u"}.get(kind, "v"),
        recurring=recurring,
        weighted_interval="seconds" if kind == "weighted_sum_agg" else "",
    )


KINDS = [
    ("count_agg", False),
    ("sum_agg", False),
    ("max_agg", False),
    ("latest_agg", False),
    ("unique_count_agg", False),
    ("unique_count_agg", True),
    ("weighted_sum_agg", False),
    ("weighted_sum_agg", True),
]
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def close(actual: Decimal, expected: Fraction) -> bool:
    return abs(Fraction(actual) - expected) < Fraction(1, 10**12)


@SETTINGS
@given(events=rows, window=st.tuples(st.integers(0, 20), st.integers(1, 30)), region=st.sampled_from([None, "eu"]))
def test_aggregate_equals_the_reference(db, events, window, region):
    store(events)
    start, length = window
    for kind, recurring in KINDS:
        metric = metric_for(kind, recurring)
        result = aggregate(
            metric,
            external_subscription_ids=["s1"],
            from_datetime=START + start * HOUR,
            to_datetime=START + (start + length) * HOUR,
            filters={"region": [region]} if region else None,
        )
        units, count = reference(kind, recurring, events, "s1", start, start + length, region)
        assert close(result.units, units), (kind, recurring, result, units)
        assert result.events_count == count, (kind, recurring, result, count)


@SETTINGS
@given(events=rows)
def test_grouped_and_per_subscription_agree_with_single_calls(db, events):
    store(events)
    periods = [("s1", START, START + 20 * HOUR), ("s2", START + 5 * HOUR, START + 25 * HOUR)]
    for kind, recurring in KINDS:
        metric = metric_for(kind, recurring)
        bulk = aggregate_subscriptions(metric, periods=periods)
        for sub, start, end in periods:
            single = aggregate(metric, external_subscription_ids=[sub], from_datetime=start, to_datetime=end)
            assert bulk[sub] == single, (kind, recurring, sub)
        groups = aggregate_grouped(
            metric, external_subscription_ids=["s1"], from_datetime=START, to_datetime=END, grouped_by="region"
        )
        for region in ("eu", "us"):
            alone = aggregate(
                metric,
                external_subscription_ids=["s1"],
                from_datetime=START,
                to_datetime=END,
                filters={"region": [region]},
            )
            grouped = groups.get(region)
            if grouped is None:
                assert alone.units == 0 and alone.events_count == 0, (kind, region)
            else:
                assert grouped == alone, (kind, recurring, region)
