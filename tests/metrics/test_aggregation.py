"""Each aggregation type on a hand-computed case; events outside the period, of another
subscription or of another code are always present and must never count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from metrics.aggregation import aggregate, aggregate_grouped, aggregate_subscriptions, apply_rounding
from metrics.models import BillableMetric
from metrics.selectors import invalid_events
from tests.factories.metrics import make_event, make_metric

pytestmark = pytest.mark.django_db

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)  # January has 31 days: 2,678,400 seconds
DAY = timedelta(days=1)


def noise(code: str, field: str = "value") -> None:
    """Events that would change every result if they counted."""
    huge = {field: 1000, "operation_type": "add"}
    make_event(code=code, timestamp=JAN - timedelta(milliseconds=1), properties={**huge, field: 1001})
    make_event(code=code, timestamp=FEB, properties={**huge, field: 1002})  # `to` is excluded
    make_event(code=code, timestamp=JAN + 3 * DAY, external_subscription_id="sub_2", properties={**huge, field: 1003})
    make_event(code="other_code", timestamp=JAN + 3 * DAY, properties={**huge, field: 1004})


def storage_metric(*, recurring: bool = False) -> BillableMetric:
    return make_metric(
        code="storage",
        aggregation_type="weighted_sum_agg",
        field_name="gb",
        weighted_interval="seconds",
        recurring=recurring,
    )


def run(metric: BillableMetric, **kwargs):
    return aggregate(metric, external_subscription_ids=["sub_1"], from_datetime=JAN, to_datetime=FEB, **kwargs)


def test_count_counts_the_period_events_of_the_subscription_and_code():
    metric = make_metric(code="calls", aggregation_type="count_agg")
    noise("calls")
    make_event(code="calls", timestamp=JAN)  # `from` is included
    make_event(code="calls", timestamp=JAN + 10 * DAY, properties={"anything": "x"}, precise_total_amount_cents="12.5")
    make_event(code="calls", timestamp=FEB - timedelta(milliseconds=1), precise_total_amount_cents="0.25")

    result = run(metric, with_event_values=True)

    assert result.units == 3
    assert result.events_count == 3
    assert result.precise_total_amount_cents == Decimal("12.75")
    assert result.event_values == (1, 1, 1)


def test_sum_skips_missing_and_non_numeric_values_and_lists_them():
    metric = make_metric(code="storage", aggregation_type="sum_agg", field_name="gb")
    noise("storage", "gb")
    make_event(code="storage", timestamp=JAN + DAY, properties={"gb": 10})
    make_event(code="storage", timestamp=JAN + 2 * DAY, properties={"gb": 2.5})
    make_event(code="storage", timestamp=JAN + 3 * DAY, properties={"gb": "4"})  # numeric text counts
    make_event(code="storage", timestamp=JAN + 4 * DAY, properties={"gb": -1.25})
    skipped = [
        make_event(code="storage", timestamp=JAN + 5 * DAY, properties={"gb": "abc"}),
        make_event(code="storage", timestamp=JAN + 5 * DAY, properties={"other": 1}),
        make_event(code="storage", timestamp=JAN + 5 * DAY, properties={"gb": None}),
        make_event(code="storage", timestamp=JAN + 5 * DAY, properties={"gb": True}),
        make_event(code="storage", timestamp=JAN + 5 * DAY, properties={"gb": {"nested": 1}}),
        make_event(code="storage", timestamp=JAN + 5 * DAY, properties={"gb": "1e999999"}),
    ]

    result = run(metric, with_event_values=True)

    assert result.units == Decimal("15.25")
    assert result.events_count == 4
    assert result.event_values == (10, Decimal("2.5"), 4, Decimal("-1.25"))
    listed = invalid_events(metric, external_subscription_ids=["sub_1"], from_datetime=JAN, to_datetime=FEB)
    assert sorted(e.id for e in listed) == sorted(e.id for e in skipped)


def test_max_of_the_period():
    metric = make_metric(code="peak", aggregation_type="max_agg", field_name="value")
    noise("peak")
    for day, value in [(1, 3), (2, 11.5), (3, -20), (4, "7")]:
        make_event(code="peak", timestamp=JAN + day * DAY, properties={"value": value})

    assert run(metric).units == Decimal("11.5")
    assert run(metric).events_count == 4


def test_latest_is_the_value_with_the_greatest_timestamp_not_the_last_received():
    metric = make_metric(code="level", aggregation_type="latest_agg", field_name="value")
    noise("level")
    make_event(code="level", timestamp=JAN + 1 * DAY, properties={"value": 5})
    make_event(code="level", timestamp=JAN + 9 * DAY, properties={"value": 7})
    make_event(code="level", timestamp=JAN + 4 * DAY, properties={"value": 9})  # received last, older
    make_event(code="level", timestamp=JAN + 20 * DAY, properties={"value": "n/a"})  # skipped

    result = run(metric, with_event_values=True)

    assert result.units == 7
    assert result.events_count == 3
    assert result.event_values == (5, 9, 7)


def test_latest_breaks_a_timestamp_tie_by_the_event_stored_last():
    metric = make_metric(code="level", aggregation_type="latest_agg", field_name="value")
    make_event(code="level", timestamp=JAN + DAY, properties={"value": 1})
    make_event(code="level", timestamp=JAN + DAY, properties={"value": 2})

    assert run(metric).units == 2


def test_unique_count_counts_distinct_values_whose_last_operation_adds():
    metric = make_metric(code="seats", aggregation_type="unique_count_agg", field_name="user")
    make_event(code="seats", timestamp=JAN - DAY, properties={"user": "old"})  # before: not recurring
    make_event(code="seats", timestamp=FEB, properties={"user": "late"})
    make_event(code="seats", timestamp=JAN + DAY, external_subscription_id="sub_2", properties={"user": "x"})
    make_event(code="other_code", timestamp=JAN + DAY, properties={"user": "y"})
    for day, user, operation in [
        (1, "ann", None),
        (2, "bob", "add"),
        (3, "ann", "add"),  # already there
        (4, "cid", "add"),
        (5, "cid", "remove"),
        (6, "zed", "remove"),  # never added
        (7, 42, None),  # a number is a value too
    ]:
        properties = {"user": user} if operation is None else {"user": user, "operation_type": operation}
        make_event(code="seats", timestamp=JAN + day * DAY, properties=properties)
    make_event(code="seats", timestamp=JAN + 8 * DAY, properties={"nouser": 1})  # skipped

    result = run(metric)

    assert result.units == 3  # ann, bob, 42
    assert result.events_count == 7


def test_recurring_unique_count_keeps_values_from_earlier_periods():
    metric = make_metric(code="seats", aggregation_type="unique_count_agg", field_name="user", recurring=True)
    make_event(code="seats", timestamp=JAN - 10 * DAY, properties={"user": "old"})
    make_event(code="seats", timestamp=JAN - 9 * DAY, properties={"user": "gone"})
    make_event(code="seats", timestamp=JAN + 2 * DAY, properties={"user": "gone", "operation_type": "remove"})
    make_event(code="seats", timestamp=JAN + 3 * DAY, properties={"user": "new"})
    make_event(code="seats", timestamp=FEB, properties={"user": "late"})
    make_event(code="seats", timestamp=JAN, external_subscription_id="sub_2", properties={"user": "x"})
    make_event(code="other_code", timestamp=JAN, properties={"user": "y"})

    result = run(metric)
    assert result.units == 2  # old, new
    assert result.events_count == 2  # the period's events

    quiet = aggregate(metric, external_subscription_ids=["sub_1"], from_datetime=FEB, to_datetime=FEB + 28 * DAY)
    assert quiet.units == 3  # old, new, late
    assert quiet.events_count == 1


def test_weighted_sum_worked_example_31_day_month():
    """+20 at the start, +10 one day later, -30 sixteen days after the start:
    20 x 1 + 30 x 15 = 470 unit-days / 31 = 15.1612903226."""
    metric = storage_metric()
    noise("storage", "gb")
    make_event(code="storage", timestamp=JAN, properties={"gb": 20})
    make_event(code="storage", timestamp=JAN + DAY, properties={"gb": 10})
    make_event(code="storage", timestamp=JAN + 16 * DAY, properties={"gb": -30})

    result = run(metric, with_event_values=True)

    assert result.units.quantize(Decimal("1e-10")) == Decimal("15.1612903226")
    assert result.events_count == 3
    assert result.event_values == (20, 10, -30)


def test_recurring_weighted_sum_carries_the_running_total_in():
    metric = storage_metric(recurring=True)
    make_event(code="storage", timestamp=JAN - 40 * DAY, properties={"gb": 8})
    make_event(code="storage", timestamp=JAN - 3 * DAY, properties={"gb": -3})
    make_event(code="storage", timestamp=JAN + DAY, properties={"gb": 20})
    make_event(code="storage", timestamp=JAN + DAY, properties={"gb": 10})  # same instant
    make_event(code="storage", timestamp=JAN + 16 * DAY, properties={"gb": -30})
    make_event(code="storage", timestamp=FEB, properties={"gb": 1000})
    make_event(code="storage", timestamp=JAN, external_subscription_id="sub_2", properties={"gb": 1000})

    result = run(metric)

    # 5 all month, plus 30 from day 1 to day 16: (5 x 31 + 30 x 15) / 31 = 605 / 31
    assert result.units.quantize(Decimal("1e-10")) == (Decimal(605) / 31).quantize(Decimal("1e-10"))
    assert result.events_count == 3
    # A period without events keeps the carried total flat: 8 - 3 + 20 + 10 - 30 = 5.
    february = aggregate(
        metric, external_subscription_ids=["sub_1"], from_datetime=FEB + DAY, to_datetime=FEB + 2 * DAY
    )
    assert february.units == 1005
    assert february.events_count == 0


def test_non_recurring_weighted_sum_starts_each_period_at_zero():
    metric = storage_metric()
    make_event(code="storage", timestamp=JAN - DAY, properties={"gb": 100})
    make_event(code="storage", timestamp=JAN + 15 * DAY + DAY / 2, properties={"gb": 62})

    assert run(metric).units.quantize(Decimal("1e-10")) == Decimal(31)  # 62 for half of the month
    assert run(metric).events_count == 1


def test_empty_period_is_zero():
    for kind, field in [("count_agg", ""), ("sum_agg", "v"), ("max_agg", "v"), ("latest_agg", "v")]:
        metric = make_metric(code=f"m_{kind}", aggregation_type=kind, field_name=field)
        result = run(metric, with_event_values=True)
        assert (result.units, result.events_count, result.event_values) == (0, 0, ())


def test_rounding_after_aggregation():
    metric = make_metric(code="storage", aggregation_type="sum_agg", field_name="gb", rounding_function="ceil")
    make_event(code="storage", timestamp=JAN + DAY, properties={"gb": "0.1"})
    make_event(code="storage", timestamp=JAN + DAY, properties={"gb": "0.3"})

    assert run(metric).units == 1  # 0.4 ceiled, not each event


@pytest.mark.parametrize(
    ("function", "precision", "expected"),
    [
        ("round", 2, "123.46"),
        ("round", None, "123"),
        ("round", 0, "123"),
        ("round", -2, "100"),
        ("ceil", 2, "123.46"),
        ("ceil", None, "124"),
        ("ceil", -2, "200"),
        ("floor", 2, "123.45"),
        ("floor", -2, "100"),
        ("", 2, "123.456"),
    ],
)
def test_rounding_table_for_123_456(function, precision, expected):
    metric = BillableMetric(rounding_function=function, rounding_precision=precision)

    rounded = apply_rounding(metric, Decimal("123.456"))

    assert rounded == Decimal(expected)
    assert str(rounded) == expected  # no 1E+2 on an invoice


def test_filters_match_all_keys_and_exclusions_match_none():
    metric = make_metric(code="calls", aggregation_type="sum_agg", field_name="n")
    rows = [
        ({"n": 1, "region": "eu", "tier": "gold"}),
        ({"n": 2, "region": "eu", "tier": "free"}),
        ({"n": 4, "region": "us", "tier": "gold"}),
        ({"n": 8, "region": "eu"}),
        ({"n": 16}),
        ({"n": 32, "region": 7}),  # numbers compare as their text
    ]
    for properties in rows:
        make_event(code="calls", timestamp=JAN + DAY, properties=properties)

    assert run(metric, filters={"region": ["eu"]}).units == 11
    assert run(metric, filters={"region": ["eu", "us"], "tier": ["gold"]}).units == 5
    assert run(metric, filters={"region": ["7"]}).units == 32
    # The default bucket of a charge with filters {region: eu, tier: gold} and {region: us}:
    default = run(metric, exclude_filters=[{"region": ["eu"], "tier": ["gold"]}, {"region": ["us"]}])
    assert default.units == 2 + 8 + 16 + 32
    # The eu bucket when a more specific eu+gold filter exists:
    assert run(metric, filters={"region": ["eu"]}, exclude_filters=[{"region": ["eu"], "tier": ["gold"]}]).units == 10


def test_several_subscriptions_and_a_repeated_id_count_once():
    metric = make_metric(code="calls", aggregation_type="count_agg")
    make_event(code="calls", timestamp=JAN + DAY)
    make_event(code="calls", timestamp=JAN + DAY, external_subscription_id="sub_2")
    make_event(code="calls", timestamp=JAN + DAY, external_subscription_id="sub_3")

    subscriptions = ["sub_1", "sub_2", "sub_1"]
    result = aggregate(metric, external_subscription_ids=subscriptions, from_datetime=JAN, to_datetime=FEB)
    assert result.units == 2
    assert aggregate(metric, external_subscription_ids=[], from_datetime=JAN, to_datetime=FEB).units == 0


def test_grouped_by_a_property():
    metric = make_metric(code="calls", aggregation_type="sum_agg", field_name="n")
    for n, region in [(1, "eu"), (2, "eu"), (4, "us"), (8, None)]:
        properties = {"n": n} if region is None else {"n": n, "region": region}
        make_event(code="calls", timestamp=JAN + DAY, properties=properties)
    make_event(code="calls", timestamp=FEB, properties={"n": 100, "region": "eu"})

    groups = aggregate_grouped(
        metric, external_subscription_ids=["sub_1"], from_datetime=JAN, to_datetime=FEB, grouped_by="region"
    )

    assert {key: (r.units, r.events_count) for key, r in groups.items()} == {"eu": (3, 2), "us": (4, 1), None: (8, 1)}


def test_grouped_recurring_weighted_sum_carries_each_group():
    metric = storage_metric(recurring=True)
    make_event(code="storage", timestamp=JAN - DAY, properties={"gb": 10, "region": "eu"})
    make_event(code="storage", timestamp=JAN + 15 * DAY + DAY / 2, properties={"gb": 62, "region": "us"})

    groups = aggregate_grouped(
        metric, external_subscription_ids=["sub_1"], from_datetime=JAN, to_datetime=FEB, grouped_by="region"
    )

    assert groups["eu"].units == 10
    assert groups["eu"].events_count == 0
    assert groups["us"].units.quantize(Decimal("1e-10")) == 31


def test_subscriptions_in_one_query_each_with_its_period():
    metric = make_metric(code="calls", aggregation_type="sum_agg", field_name="n")
    make_event(code="calls", timestamp=JAN + DAY, external_subscription_id="a", properties={"n": 1})
    make_event(code="calls", timestamp=JAN + 20 * DAY, external_subscription_id="a", properties={"n": 2})
    make_event(code="calls", timestamp=JAN + DAY, external_subscription_id="b", properties={"n": 4})
    make_event(code="calls", timestamp=JAN + 20 * DAY, external_subscription_id="b", properties={"n": 8})
    make_event(code="other", timestamp=JAN + DAY, external_subscription_id="a", properties={"n": 16})

    results = aggregate_subscriptions(metric, periods=[("a", JAN, FEB), ("b", JAN + 10 * DAY, FEB), ("c", JAN, FEB)])

    assert {sub: (r.units, r.events_count) for sub, r in results.items()} == {"a": (3, 2), "b": (8, 1), "c": (0, 0)}
    with pytest.raises(ValueError, match="once"):
        aggregate_subscriptions(metric, periods=[("a", JAN, FEB), ("a", FEB, FEB + DAY)])


def test_subscriptions_weighted_sum_uses_each_period_length():
    metric = storage_metric()
    make_event(code="storage", timestamp=JAN + DAY, external_subscription_id="a", properties={"gb": 10})
    make_event(code="storage", timestamp=JAN + DAY, external_subscription_id="b", properties={"gb": 10})

    results = aggregate_subscriptions(metric, periods=[("a", JAN, JAN + 2 * DAY), ("b", JAN, JAN + 5 * DAY)])

    assert results["a"].units == 5  # 10 for 1 of 2 days
    assert results["b"].units == 8  # 10 for 4 of 5 days


def test_naive_or_reversed_periods_are_refused():
    metric = make_metric()
    with pytest.raises(ValueError, match="aware"):
        aggregate(metric, external_subscription_ids=["s"], from_datetime=datetime(2026, 1, 1), to_datetime=FEB)
    with pytest.raises(ValueError, match="ends after"):
        aggregate(metric, external_subscription_ids=["s"], from_datetime=FEB, to_datetime=JAN)
