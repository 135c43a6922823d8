"""Prorated aggregation of recurring sum and unique count metrics, worked by hand.

June 2026 has 30 days. An event's value counts from its local day to the period's last day,
inclusive, over 30; units carried in from earlier periods count for the days of the (possibly
clipped) period; a unique count value counts from its add day to its remove day, inclusive.
Events of another subscription, of another code or at/after `to` are always present and never count.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics.aggregation import (
    ProratedEvent,
    ProratedPeriod,
    aggregate_prorated,
    aggregate_prorated_grouped,
    aggregate_prorated_subscriptions,
)
from metrics.aggregation_reference import _prorated_in_python
from metrics.models import Event
from tests.factories.metrics import make_event, make_metric

pytestmark = pytest.mark.django_db

D = Decimal


def jun(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, tzinfo=UTC)


MAY_20 = datetime(2026, 5, 20, tzinfo=UTC)
JUN = jun(1)
JUL = datetime(2026, 7, 1, tzinfo=UTC)


def seats_metric():
    return make_metric(code="seats", aggregation_type="sum_agg", field_name="n", recurring=True)


def users_metric():
    return make_metric(code="users", aggregation_type="unique_count_agg", field_name="user", recurring=True)


def seat(timestamp: datetime, n, sub: str = "sub_1", code: str = "seats", **properties) -> None:
    make_event(code=code, timestamp=timestamp, external_subscription_id=sub, properties={"n": n, **properties})


def user(timestamp: datetime, name: str, operation: str = "add", sub: str = "sub_1") -> None:
    make_event(
        code="users",
        timestamp=timestamp,
        external_subscription_id=sub,
        properties={"user": name, "operation_type": operation},
    )


def seats_noise() -> None:
    seat(jun(3), 1000, sub="sub_2")
    seat(jun(3), 1000, code="other")
    seat(JUL, 1000)  # `to` is excluded


def prorated(metric, start=JUN, end=JUL, full_days=30, **kwargs):
    return aggregate_prorated(
        metric, external_subscription_ids=["sub_1"], from_datetime=start, to_datetime=end, full_days=full_days, **kwargs
    )


def test_sum_counts_each_unit_from_its_day_and_carried_units_for_the_whole_period():
    metric = seats_metric()
    seats_noise()
    seat(MAY_20, 5)  # carried in: 5 x 30/30 = 5
    seat(jun(11, 10), 3)  # Jun 11..30 = 20 days: 3 x 20/30 = 2
    seat(jun(21), -2)  # Jun 21..30 = 10 days: -2 x 10/30 = -0.666...
    seat(jun(25), "not a number")  # skipped

    result = prorated(metric, with_events=True)

    assert result.units == 6  # 5 + 3 - 2 at the period's end
    # 5 + 2 - 0.6666... = 6.3333... rounded up to 5 decimals (Lago's ceil(5))
    assert result.prorated_units == D("6.33334")
    assert result.events_count == 2  # the period's valid events; carried-in ones are not counted
    assert [(e.timestamp, e.units) for e in result.events] == [(JUN, 5), (jun(11, 10), 3), (jun(21), -2)]
    assert [round(e.prorated_units, 10) for e in result.events] == [D("5"), D("2"), D("-0.6666666667")]


def test_sum_of_a_subscription_started_mid_month_counts_carried_units_for_its_days_only():
    metric = seats_metric()
    seats_noise()
    seat(MAY_20, 5)  # carried: Jun 16..30 = 15 days: 5 x 15/30 = 2.5
    seat(jun(21, 8), 3)  # Jun 21..30 = 10 days: 3 x 10/30 = 1

    result = prorated(metric, start=jun(16, 9))  # clipped start, mid-day: the 16th counts

    assert (result.units, result.prorated_units, result.events_count) == (8, D("3.5"), 1)


def test_sum_of_a_terminated_subscription_stops_at_its_last_day():
    metric = seats_metric()
    seat(MAY_20, 5)  # Jun 1..10 = 10 days: 5 x 10/30 = 1.6666...
    seat(jun(5), 3)  # Jun 5..10 = 6 days: 3 x 6/30 = 0.6
    seat(jun(10, 13), 100)  # after the termination: never counts

    result = prorated(metric, end=jun(10, 12))

    assert result.units == 8
    assert result.prorated_units == D("2.26667")  # 2.2666... rounded up


def test_days_are_counted_in_the_subscription_timezone():
    metric = seats_metric()
    # Asia/Tokyo (UTC+9): June is [May 31 15:00 UTC, Jun 30 15:00 UTC).
    start, end = datetime(2026, 5, 31, 15, tzinfo=UTC), datetime(2026, 6, 30, 15, tzinfo=UTC)
    seat(jun(10, 16), 3)  # Jun 11 01:00 in Tokyo: Jun 11..30 = 20 days -> 2 (in UTC it would be 21 days)

    tokyo = prorated(metric, start=start, end=end, timezone="Asia/Tokyo")

    assert (tokyo.units, tokyo.prorated_units) == (3, D("2"))
    utc = prorated(metric)  # the same event seen from UTC: Jun 10..30 = 21 days: 3 x 21/30 = 2.1
    assert utc.prorated_units == D("2.1")


def test_unique_count_counts_each_value_from_its_add_day_to_its_remove_day():
    metric = users_metric()
    user(datetime(2026, 5, 3, tzinfo=UTC), "a")  # carried in, removed Jun 21: Jun 1..21 = 21 days
    user(datetime(2026, 5, 5, tzinfo=UTC), "b")
    user(datetime(2026, 5, 20, tzinfo=UTC), "b", "remove")  # gone before June: 0 days
    user(jun(11, 9), "c")  # Jun 11..30 = 20 days
    user(jun(15), "c")  # already active: changes nothing
    user(jun(21, 18), "a", "remove")
    user(jun(5, 1), "d")  # Jun 5 ... removed Jun 5, re-added Jun 5, removed Jun 6:
    user(jun(5, 2), "d", "remove")  # spans [5, 5] and [5, 6] share the 5th: 2 days
    user(jun(5, 3), "d")
    user(jun(6, 3), "d", "remove")
    user(jun(3), "e", sub="sub_2")  # another subscription

    result = prorated(metric, with_events=True)

    assert result.units == 1  # only c is active at the end
    assert result.prorated_units == D("1.43334")  # (21 + 20 + 2) / 30 = 1.4333... rounded up
    assert result.events_count == 7
    steps = [(e.timestamp, e.units, e.prorated_units.quantize(D("0.0001"))) for e in result.events]
    assert steps == [
        (JUN, 1, D("0.7000")),  # a carried in (21/30); b's add and remove net to 0 and 0 days
        (jun(5, 1), 1, D("0.0333")),  # d: Jun 5 (1 day)
        (jun(5, 2), -1, D("0")),
        (jun(5, 3), 1, D("0.0333")),  # d again: Jun 5..6 less the 5th counted already (1 day)
        (jun(6, 3), -1, D("0")),
        (jun(11, 9), 1, D("0.6667")),  # c: 20 days
        (jun(21, 18), -1, D("0")),
    ]


def test_unique_count_with_a_value_removed_before_a_mid_month_start_counts_nothing():
    metric = users_metric()
    user(jun(2), "a")
    user(jun(3), "a", "remove")  # before the subscription's start on Jun 16
    user(jun(4), "b")  # active at the start: Jun 16..30 = 15 days

    result = prorated(metric, start=jun(16, 12))

    assert (result.units, result.prorated_units, result.events_count) == (1, D("0.5"), 0)


def test_only_carried_in_units_and_nothing_at_all():
    metric = seats_metric()
    assert prorated(metric) == prorated(metric)  # empty: zeros
    assert prorated(metric).units == 0 and prorated(metric).prorated_units == 0
    seat(MAY_20, 4)
    result = prorated(metric, with_events=True)
    assert (result.units, result.prorated_units, result.events_count) == (4, 4, 0)
    assert result.events == (ProratedEvent(JUN, D(4), D(4)),)


def test_filters_and_groups():
    metric = seats_metric()
    seat(MAY_20, 2, region="eu")  # 2 x 30/30
    seat(jun(16), 3, region="eu")  # 3 x 15/30 = 1.5
    seat(jun(16), 6, region="us")  # 6 x 15/30 = 3
    seat(jun(16), 1)  # no region

    eu = prorated(metric, filters={"region": ["eu"]})
    assert (eu.units, eu.prorated_units) == (5, D("3.5"))
    not_eu = prorated(metric, exclude_filters=[{"region": ["eu"]}])
    assert (not_eu.units, not_eu.prorated_units) == (7, D("3.5"))  # 6 x 0.5 + 1 x 0.5

    groups = aggregate_prorated_grouped(
        metric,
        external_subscription_ids=["sub_1"],
        from_datetime=JUN,
        to_datetime=JUL,
        full_days=30,
        grouped_by="region",
    )
    assert {k: (r.units, r.prorated_units) for k, r in groups.items()} == {
        "eu": (5, D("3.5")),
        "us": (6, D("3")),
        None: (1, D("0.5")),
    }


def test_batched_periods_match_one_query_each():
    metric = seats_metric()
    seat(MAY_20, 5)
    seat(jun(11), 3)
    seat(MAY_20, 2, sub="sub_2")
    seat(jun(10, 16), 1, sub="sub_2")  # Jun 11 in Tokyo
    periods = [
        ProratedPeriod("sub_1", JUN, JUL, 30),
        ProratedPeriod(
            "sub_2", datetime(2026, 5, 31, 15, tzinfo=UTC), datetime(2026, 6, 30, 15, tzinfo=UTC), 30, "Asia/Tokyo"
        ),
        ProratedPeriod("sub_3", JUN, JUL, 30),
    ]
    batched = aggregate_prorated_subscriptions(metric, periods=periods, with_events=True)
    for period in periods:
        single = aggregate_prorated(
            metric,
            external_subscription_ids=[period.external_subscription_id],
            from_datetime=period.from_datetime,
            to_datetime=period.to_datetime,
            full_days=period.full_days,
            timezone=period.timezone,
            with_events=True,
        )
        assert batched[period.external_subscription_id] == single
    assert batched["sub_1"].prorated_units == 7  # 5 + 3 x 20/30
    assert batched["sub_2"].prorated_units == D("2.66667")  # 2 + 1 x 20/30
    assert batched["sub_3"].units == 0
    with pytest.raises(ValueError):
        aggregate_prorated_subscriptions(metric, periods=[periods[0], periods[0]])


def test_other_aggregations_are_refused():
    metric = make_metric(code="calls", aggregation_type="count_agg")
    with pytest.raises(ValueError):
        prorated(metric)


def test_one_query_per_aggregation(django_assert_num_queries):
    metric = users_metric()
    for day in range(1, 20):
        user(jun(day), f"u{day % 4}", "remove" if day % 3 == 0 else "add")
    with django_assert_num_queries(1):
        prorated(metric, with_events=True)


# --- hypothesis: the SQL equals the Python implementation (the demo's, written independently
# of the SQL), for random event sets, periods and timezones.

steps = st.lists(
    st.tuples(
        st.integers(-40, 29 * 24 + 23),  # hours after Jun 1 00:00 UTC; before it: carried in
        st.integers(-5, 9),
        st.sampled_from(["a", "b", "c"]),
        st.booleans(),
    ),
    max_size=14,
)


@pytest.mark.postgres
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=steps,
    kind=st.sampled_from(["sum_agg", "unique_count_agg"]),
    start_day=st.integers(1, 20),
    end_day=st.integers(21, 31),
    tz=st.sampled_from(["UTC", "Asia/Tokyo", "America/Los_Angeles"]),
)
def test_sql_equals_python(steps, kind, start_day, end_day, tz):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("compares the SQL with the Python fallback")
    Event.objects.all().delete()
    metric = make_metric(code=f"m_{kind}", aggregation_type=kind, field_name="v", recurring=True)
    for hour, n, name, removes in steps:
        props = {"v": n if kind == "sum_agg" else name}
        if removes:
            props["operation_type"] = "remove"
        make_event(code=metric.code, timestamp=JUN + timedelta(hours=hour), properties=props)
    start = JUN + timedelta(days=start_day - 1, hours=7)
    end = JUN + timedelta(days=end_day - 1, hours=5)
    period = ProratedPeriod("sub_1", start, end, 30, tz)
    sql = aggregate_prorated_subscriptions(metric, periods=[period], with_events=True)["sub_1"]
    python = _prorated_in_python(metric, "per_subscription", [period], None, None, (), True).get("sub_1")
    if python is None:
        assert (sql.units, sql.prorated_units, sql.events_count, sql.events) == (0, 0, 0, ())
    else:
        assert (sql.units, sql.prorated_units, sql.events_count) == (
            python.units,
            python.prorated_units,
            python.events_count,
        )
        assert [(e.timestamp, e.units) for e in sql.events] == [(e.timestamp, e.units) for e in python.events]
        for ours, theirs in zip(sql.events, python.events, strict=True):
            assert abs(ours.prorated_units - theirs.prorated_units) < D("1e-15")
    metric.delete()
