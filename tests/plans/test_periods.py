"""Billing periods: the issue's worked examples by hand, anniversary clamping, timezones and DST,
and hypothesis tiling (consecutive periods leave no gap and no overlap)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_project.money import round_amount
from plans.periods import (
    Period,
    annualized_amount,
    billing_period,
    charges_period,
    clip_to,
    next_period,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))


# ---------------------------------------------------------------------------------------------
# The worked examples


def test_monthly_calendar_started_aug_10_first_period_and_fee():
    start = utc(2023, 8, 10, 14, 30)
    period = billing_period(interval="monthly", billing_time="calendar", anchor=start, at=start, tz="UTC")
    # Day-aligned: the period opens at the start day's local midnight, as Lago's from_datetime.
    assert period.from_datetime == utc(2023, 8, 10)
    assert period.to_datetime == utc(2023, 9, 1)
    assert period.full_from_datetime == utc(2023, 8, 1)
    assert (period.days, period.full_days) == (22, 31)
    assert period.fraction == D(22) / D(31)
    assert round_amount(D("50") * period.fraction, "USD") == D("35.48")
    following = next_period(period, interval="monthly", billing_time="calendar", anchor=start, tz="UTC")
    assert (following.from_datetime, following.to_datetime) == (utc(2023, 9, 1), utc(2023, 10, 1))
    assert following.fraction == 1


def test_weekly_calendar_started_wednesday_is_five_sevenths():
    start = utc(2022, 6, 22)
    assert start.weekday() == 2  # Wednesday
    period = billing_period(interval="weekly", billing_time="calendar", anchor=start, at=start, tz="UTC")
    assert period.to_datetime == utc(2022, 6, 27)  # the next Monday
    assert period.full_from_datetime == utc(2022, 6, 20)
    assert period.fraction == D(5) / D(7)


def test_yearly_calendar_started_mar_15_non_leap_is_292_of_365():
    start = utc(2023, 3, 15)
    period = billing_period(interval="yearly", billing_time="calendar", anchor=start, at=start, tz="UTC")
    assert (period.from_datetime, period.to_datetime) == (start, utc(2024, 1, 1))
    assert (period.days, period.full_days) == (292, 365)
    assert period.fraction == D(292) / D(365)


@pytest.mark.parametrize(("year", "february_end"), [(2023, 28), (2024, 29)])
def test_anniversary_monthly_started_jan_31_clamps_to_month_ends(year, february_end):
    start = utc(year, 1, 31, 9)
    first = billing_period(interval="monthly", billing_time="anniversary", anchor=start, at=start, tz="UTC")
    assert first.full_from_datetime == utc(year, 1, 31)
    assert first.to_datetime == utc(year, 2, february_end)
    second = next_period(first, interval="monthly", billing_time="anniversary", anchor=start, tz="UTC")
    assert (second.from_datetime, second.to_datetime) == (utc(year, 2, february_end), utc(year, 3, 31))
    assert second.days == 1 + 30  # the last day of February and Mar 1-30
    third = next_period(second, interval="monthly", billing_time="anniversary", anchor=start, tz="UTC")
    assert (third.from_datetime, third.to_datetime) == (utc(year, 3, 31), utc(year, 4, 30))


def test_tokyo_and_los_angeles_feb_1_are_different_utc_instants():
    at = utc(2024, 2, 10)
    tokyo = billing_period(interval="monthly", billing_time="calendar", anchor=utc(2023, 1, 1), at=at, tz="Asia/Tokyo")
    los_angeles = billing_period(
        interval="monthly", billing_time="calendar", anchor=utc(2023, 1, 1), at=at, tz="America/Los_Angeles"
    )
    assert tokyo.from_datetime == utc(2024, 1, 31, 15)  # Feb 1 00:00 JST (UTC+9)
    assert tokyo.to_datetime == utc(2024, 2, 29, 15)
    assert los_angeles.from_datetime == utc(2024, 2, 1, 8)  # Feb 1 00:00 PST (UTC-8)
    assert los_angeles.to_datetime == utc(2024, 3, 1, 8)
    # The same instant falls in different local months.
    instant = utc(2024, 1, 31, 20)
    assert billing_period(
        interval="monthly", billing_time="calendar", anchor=utc(2023, 1, 1), at=instant, tz="Asia/Tokyo"
    ).from_datetime == utc(2024, 1, 31, 15)
    assert billing_period(
        interval="monthly", billing_time="calendar", anchor=utc(2023, 1, 1), at=instant, tz="America/Los_Angeles"
    ).from_datetime == utc(2024, 1, 1, 8)


# ---------------------------------------------------------------------------------------------
# Calendar starts of every interval


@pytest.mark.parametrize(
    ("interval", "at", "expected"),
    [
        ("weekly", utc(2024, 5, 16), (utc(2024, 5, 13), utc(2024, 5, 20))),
        ("monthly", utc(2024, 2, 29, 23), (utc(2024, 2, 1), utc(2024, 3, 1))),
        ("quarterly", utc(2024, 5, 16), (utc(2024, 4, 1), utc(2024, 7, 1))),
        ("quarterly", utc(2024, 12, 31), (utc(2024, 10, 1), utc(2025, 1, 1))),
        ("semiannual", utc(2024, 6, 30), (utc(2024, 1, 1), utc(2024, 7, 1))),
        ("semiannual", utc(2024, 7, 1), (utc(2024, 7, 1), utc(2025, 1, 1))),
        ("yearly", utc(2024, 7, 1), (utc(2024, 1, 1), utc(2025, 1, 1))),
    ],
)
def test_calendar_periods(interval, at, expected):
    period = billing_period(interval=interval, billing_time="calendar", anchor=utc(2020, 1, 1), at=at, tz="UTC")
    assert (period.from_datetime, period.to_datetime) == expected
    assert period.fraction == 1


@pytest.mark.parametrize(
    ("interval", "at", "expected"),
    [
        ("weekly", utc(2024, 5, 16), (utc(2024, 5, 15), utc(2024, 5, 22))),  # Wednesdays
        ("quarterly", utc(2024, 5, 16), (utc(2024, 2, 29), utc(2024, 5, 31))),
        ("semiannual", utc(2024, 9, 1), (utc(2024, 5, 31), utc(2024, 11, 30))),
        ("yearly", utc(2025, 3, 1), (utc(2024, 5, 31), utc(2025, 5, 31))),
    ],
)
def test_anniversary_periods(interval, at, expected):
    anchor = utc(2023, 5, 31)  # a Wednesday, and a 31st
    period = billing_period(interval=interval, billing_time="anniversary", anchor=anchor, at=at, tz="UTC")
    assert (period.from_datetime, period.to_datetime) == expected


def test_anniversary_yearly_from_feb_29():
    anchor = utc(2024, 2, 29)
    period = billing_period(interval="yearly", billing_time="anniversary", anchor=anchor, at=utc(2025, 6, 1), tz="UTC")
    assert (period.from_datetime, period.to_datetime) == (utc(2025, 2, 28), utc(2026, 2, 28))
    period = billing_period(interval="yearly", billing_time="anniversary", anchor=anchor, at=utc(2028, 3, 1), tz="UTC")
    assert period.from_datetime == utc(2028, 2, 29)


def test_bill_charges_monthly_gives_monthly_charges_periods_for_a_yearly_plan():
    anchor = utc(2024, 3, 15)
    kwargs = {"interval": "yearly", "billing_time": "calendar", "anchor": anchor, "at": utc(2024, 6, 10), "tz": "UTC"}
    monthly = charges_period(**kwargs, bill_charges_monthly=True)
    assert (monthly.from_datetime, monthly.to_datetime) == (utc(2024, 6, 1), utc(2024, 7, 1))
    yearly = charges_period(**kwargs, bill_charges_monthly=False)
    assert (yearly.from_datetime, yearly.to_datetime) == (anchor, utc(2025, 1, 1))
    # Ignored for the intervals it does not apply to.
    kwargs["interval"] = "quarterly"
    assert charges_period(**kwargs, bill_charges_monthly=True).to_datetime == utc(2024, 7, 1)


def test_clip_from_keeps_the_anniversary_but_starts_at_the_plan_change():
    period = billing_period(
        interval="monthly",
        billing_time="anniversary",
        anchor=utc(2024, 1, 10),
        clip_from=utc(2024, 3, 20, 12),
        at=utc(2024, 3, 25),
        tz="UTC",
    )
    # Day-aligned at the change's local midnight (its usage still starts at 12:00).
    assert (period.from_datetime, period.to_datetime) == (utc(2024, 3, 20), utc(2024, 4, 10))
    assert (period.days, period.full_days) == (21, 31)


def test_clip_to_counts_the_termination_day():
    period = billing_period(
        interval="monthly", billing_time="calendar", anchor=utc(2024, 1, 1), at=utc(2024, 4, 2), tz="UTC"
    )
    terminated = clip_to(period, utc(2024, 4, 10, 15), "UTC")
    assert terminated.to_datetime == utc(2024, 4, 10, 15)
    assert (terminated.days, terminated.full_days) == (10, 30)
    assert clip_to(period, utc(2024, 4, 10), "UTC").days == 9


def test_at_before_the_start_is_the_first_period():
    start = utc(2024, 4, 10)
    period = billing_period(interval="monthly", billing_time="calendar", anchor=start, at=utc(2024, 1, 1), tz="UTC")
    assert period.from_datetime == start


def test_dst_month_counts_calendar_days_not_hours():
    tz = "Europe/Paris"  # March 2024 has 30 days of 24 h and one of 23 h
    period = billing_period(
        interval="monthly", billing_time="calendar", anchor=utc(2024, 1, 1), at=utc(2024, 3, 15), tz=tz
    )
    assert period.from_datetime == local(tz, 2024, 3, 1).astimezone(UTC) == utc(2024, 2, 29, 23)
    assert period.to_datetime == utc(2024, 3, 31, 22)
    assert period.full_days == 31


def test_midnight_that_does_not_exist():
    # America/Santiago springs forward at 24:00 -> 01:00 (Sept 8, 2024): Sept 8 has no midnight.
    tz = "America/Santiago"
    period = billing_period(
        interval="weekly", billing_time="anniversary", anchor=utc(2024, 9, 1, 12), at=utc(2024, 9, 8, 12), tz=tz
    )
    assert period.from_datetime.astimezone(ZoneInfo(tz)).date().isoformat() == "2024-09-08"
    assert period.full_days == 7


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="aware"):
        billing_period(
            interval="monthly",
            billing_time="calendar",
            anchor=datetime(2024, 1, 1),
            at=utc(2024, 1, 1),
            tz="UTC",
        )


def test_annualized_amounts():
    assert annualized_amount(D(10), "weekly") == D(520)
    assert annualized_amount(D(10), "monthly") == D(120)
    assert annualized_amount(D(10), "quarterly") == D(40)
    assert annualized_amount(D(10), "semiannual") == D(20)
    assert annualized_amount(D(10), "yearly") == D(10)


# ---------------------------------------------------------------------------------------------
# Tiling

TIMEZONES = [
    "UTC",
    "Asia/Tokyo",
    "America/Los_Angeles",
    "Europe/Paris",
    "Australia/Lord_Howe",  # 30-minute DST
    "America/Santiago",  # DST at midnight
    "Asia/Kathmandu",  # +05:45
    "Pacific/Apia",  # skipped Dec 30, 2011 entirely
    "America/St_Johns",
]

FULL_DAYS = {
    "weekly": {7},
    "monthly": set(range(28, 32)),
    "quarterly": set(range(89, 93)),
    "semiannual": set(range(181, 185)),
    "yearly": {365, 366},
}

instants = st.datetimes(min_value=datetime(2010, 1, 1), max_value=datetime(2030, 12, 31)).map(
    lambda naive: naive.replace(tzinfo=UTC)
)


@given(
    interval=st.sampled_from(["weekly", "monthly", "quarterly", "semiannual", "yearly"]),
    billing_time=st.sampled_from(["calendar", "anniversary"]),
    tz=st.sampled_from(TIMEZONES),
    anchor=instants,
    offset=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=800)),
)
def test_consecutive_periods_tile_time(interval, billing_time, tz, anchor, offset):
    kwargs = {"interval": interval, "billing_time": billing_time, "anchor": anchor, "tz": tz}
    period = billing_period(**kwargs, at=anchor + offset)
    assert period.from_datetime <= anchor + offset < period.to_datetime
    # Day-aligned: never before the local midnight of the anchor's day.
    assert period.from_datetime.astimezone(ZoneInfo(tz)).date() >= anchor.astimezone(ZoneInfo(tz)).date()
    assert period.from_datetime > anchor - timedelta(days=1, hours=1)
    assert period.full_from_datetime <= period.from_datetime
    assert 0 < period.days <= period.full_days
    assert 0 < period.fraction <= 1
    previous: Period | None = None
    for _ in range(4):
        if previous is not None:
            assert period.from_datetime == previous.to_datetime  # no gap, no overlap
            assert period.fraction == 1
        # Every instant of the period maps back to it, its last microsecond included.
        assert billing_period(**kwargs, at=period.from_datetime) == period
        assert billing_period(**kwargs, at=period.to_datetime - timedelta(microseconds=1)) == period
        assert period.full_days in FULL_DAYS[interval] or tz == "Pacific/Apia"  # Apia lost Dec 30, 2011
        previous = period
        period = next_period(period, **kwargs)


@given(tz=st.sampled_from(TIMEZONES), anchor=instants, bill_charges_monthly=st.booleans())
def test_monthly_charges_periods_tile_the_yearly_billing_period(tz, anchor, bill_charges_monthly):
    common = {"interval": "yearly", "billing_time": "anniversary", "anchor": anchor, "tz": tz}
    billing = billing_period(**common, at=anchor)
    cursor, months = billing.from_datetime, 0
    while cursor < billing.to_datetime:
        period = charges_period(**common, at=cursor, bill_charges_monthly=bill_charges_monthly)
        assert period.from_datetime == cursor
        cursor, months = period.to_datetime, months + 1
    assert cursor == billing.to_datetime
    assert months == (12 if bill_charges_monthly else 1)
