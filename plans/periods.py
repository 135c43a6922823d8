"""Billing periods: which [from, to) a subscription bills for an instant, as pure functions:
local midnights in the billing timezone as aware UTC datetimes, calendar or anniversary
(clamped to month end); the first period is clipped to the start and `fraction` prorates it."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

INTERVALS = ("weekly", "monthly", "quarterly", "semiannual", "yearly")
BILLING_TIMES = ("calendar", "anniversary")

# Month-based intervals: how many months a period spans.
_MONTHS = {"monthly": 1, "quarterly": 3, "semiannual": 6, "yearly": 12}

# For annualised plan comparisons (upgrade or downgrade).
PERIODS_PER_YEAR = {"weekly": 52, "monthly": 12, "quarterly": 4, "semiannual": 2, "yearly": 1}

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Period:
    from_datetime: datetime  # UTC, inclusive
    to_datetime: datetime  # UTC, exclusive
    full_from_datetime: datetime  # the full (unclipped) period this one belongs to
    full_to_datetime: datetime
    days: int  # local calendar days in [from, to)
    full_days: int  # local calendar days in the full period

    @property
    def fraction(self) -> Decimal:
        """days / full_days: exactly 1 for a full period, 22/31 for Aug 10 - Sep 1."""
        if self.days == self.full_days:
            return Decimal(1)
        return Decimal(self.days) / Decimal(self.full_days)

    @property
    def is_full(self) -> bool:
        return self.from_datetime == self.full_from_datetime and self.to_datetime == self.full_to_datetime


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz or "UTC")


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant of `day`'s 00:00 in `zone`. Where midnight does not exist (a DST jump at
    00:00) the pre-transition offset maps it to the first instant of the day; where it exists
    twice, the first one. Either way one date maps to one instant, so periods always tile."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _local_date(instant: datetime, zone: ZoneInfo) -> date:
    return instant.astimezone(zone).date()


def local_date(instant: datetime, tz: str) -> date:
    """The calendar date of `instant` in `tz`."""
    return _local_date(instant, _zone(tz))


def _days_touched(start: datetime, end: datetime, zone: ZoneInfo) -> int:
    """Local calendar days that [start, end) touches: Aug 10 14:00 - Sep 1 00:00 is 22 days."""
    if end <= start:
        return 0
    return (_local_date(end - _TICK, zone) - _local_date(start, zone)).days + 1


def _month_day(month_index: int, day: int) -> date:
    """The `day` of month `month_index` (year * 12 + month - 1), clamped to the month's end."""
    year, month0 = divmod(month_index, 12)
    return date(year, month0 + 1, min(day, calendar.monthrange(year, month0 + 1)[1]))


def _full_period_dates(interval: str, billing_time: str, anchor_day: date, day: date) -> tuple[date, date]:
    """Local [start, end) dates of the full period containing `day`."""
    if interval == "weekly":
        weekday = 0 if billing_time == "calendar" else anchor_day.weekday()  # Monday or the start's
        start = day - timedelta(days=(day.weekday() - weekday) % 7)
        return start, start + timedelta(days=7)
    months = _MONTHS[interval]
    if billing_time == "calendar":
        origin_month, origin_day = 0, 1  # periods begin on the 1st of January + k * months
    else:
        origin_month, origin_day = anchor_day.month - 1, anchor_day.day
    month_index = day.year * 12 + day.month - 1
    start_index = month_index - (month_index - origin_month) % months
    start = _month_day(start_index, origin_day)
    if start > day:  # e.g. anniversary on the 31st: Mar 15 belongs to the period from Feb 28
        start_index -= months
        start = _month_day(start_index, origin_day)
    return start, _month_day(start_index + months, origin_day)


def _check(interval: str, billing_time: str) -> None:
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval {interval!r}")
    if billing_time not in BILLING_TIMES:
        raise ValueError(f"unknown billing_time {billing_time!r}")


def _full_period(
    interval: str, billing_time: str, anchor: datetime, at: datetime, zone: ZoneInfo
) -> tuple[datetime, datetime]:
    anchor_day = _local_date(anchor, zone)
    start_day, end_day = _full_period_dates(interval, billing_time, anchor_day, _local_date(at, zone))
    start, end = _local_midnight(start_day, zone), _local_midnight(end_day, zone)
    # Around a repeated local midnight the local date can disagree with the UTC boundary by an
    # hour; step to the neighbouring period so that `at` is always inside [start, end).
    while at >= end:
        start_day, end_day = _full_period_dates(interval, billing_time, anchor_day, end_day)
        start, end = _local_midnight(start_day, zone), _local_midnight(end_day, zone)
    while at < start:
        start_day, end_day = _full_period_dates(interval, billing_time, anchor_day, start_day - timedelta(days=1))
        start, end = _local_midnight(start_day, zone), _local_midnight(end_day, zone)
    return start, end


def billing_period(
    *,
    interval: str,
    billing_time: str,
    anchor: datetime,
    at: datetime,
    tz: str,
    clip_from: datetime | None = None,
) -> Period:
    """The billing period containing `at`, clipped so it starts no earlier than `clip_from`
    (default `anchor`, the subscription's start). `anchor` also fixes anniversary dates; a
    plan change keeps the first subscription's anniversary (`anchor`) but starts billing at the
    change (`clip_from`). An `at` before the start is taken as the start."""
    _check(interval, billing_time)
    _require_aware(anchor, "anchor")
    _require_aware(at, "at")
    clip_from = anchor if clip_from is None else clip_from
    _require_aware(clip_from, "clip_from")
    zone = _zone(tz)
    at = max(at, clip_from).astimezone(UTC)
    full_from, full_to = _full_period(interval, billing_time, anchor, at, zone)
    # Day-aligned, as Lago: a start at 01:00 opens the period at that day's local midnight. The
    # usage of the period still starts at the start instant (invoicing clips it there).
    from_datetime = max(full_from, _local_midnight(_local_date(clip_from, zone), zone))
    return Period(
        from_datetime=from_datetime,
        to_datetime=full_to,
        full_from_datetime=full_from,
        full_to_datetime=full_to,
        days=_days_touched(from_datetime, full_to, zone),
        full_days=_days_touched(full_from, full_to, zone),
    )


def charges_period(
    *,
    interval: str,
    billing_time: str,
    anchor: datetime,
    at: datetime,
    tz: str,
    bill_charges_monthly: bool,
    clip_from: datetime | None = None,
) -> Period:
    """The period usage charges cover: the billing period, or the month (calendar month or
    monthly anniversary) inside it when a yearly/semiannual plan bills charges monthly."""
    if bill_charges_monthly and interval in ("yearly", "semiannual"):
        interval = "monthly"
    return billing_period(
        interval=interval, billing_time=billing_time, anchor=anchor, at=at, tz=tz, clip_from=clip_from
    )


def next_period(period: Period, *, interval: str, billing_time: str, anchor: datetime, tz: str) -> Period:
    """The period right after `period` (it starts where `period` ends)."""
    return billing_period(interval=interval, billing_time=billing_time, anchor=anchor, at=period.to_datetime, tz=tz)


def clip_to(period: Period, end: datetime, tz: str, *, end_day_used: bool = True) -> Period:
    """`period` ending at `end` instead (a termination or plan change inside it). The day of
    `end` counts as used when `end` is not a local midnight, except with `end_day_used=False`:
    an upgrade gives its switch day to the new plan only (Lago's
    app/models/subscription.rb `date_diff_with_timezone`: one day less when upgraded)."""
    _require_aware(end, "end")
    zone = _zone(tz)
    end = min(max(end.astimezone(UTC), period.from_datetime), period.to_datetime)
    days = _days_touched(period.from_datetime, end, zone)
    if not end_day_used:
        days = max((_local_date(end, zone) - _local_date(period.from_datetime, zone)).days, 0)
    return Period(
        from_datetime=period.from_datetime,
        to_datetime=end,
        full_from_datetime=period.full_from_datetime,
        full_to_datetime=period.full_to_datetime,
        days=days,
        full_days=period.full_days,
    )


# --------------------------------------------------------------------------------------------
# Subscriptions (duck-typed: anything with the Subscription model's attributes)


def subscription_timezone(subscription: Any) -> str:
    """The billing timezone: `Customer.applicable_timezone` (the customer's, else the
    organization's). Billing querysets load it with the row as `billing_timezone`
    (invoicing.billing.with_billing_relations), so a run does not ask once per subscription."""
    loaded = getattr(subscription, "billing_timezone", None)
    if loaded:
        return str(loaded)
    return str(subscription.customer.applicable_timezone())


def _anchors(subscription: Any) -> tuple[datetime, datetime]:
    """(anniversary anchor, billing start). A plan change keeps the anniversary of the
    subscription it replaces (subscription_at) and starts billing when it starts (started_at)."""
    anchor = subscription.subscription_at
    start = subscription.started_at or subscription.subscription_at
    return anchor, max(anchor, start)


def subscription_period(subscription: Any, at: datetime) -> Period:
    anchor, start = _anchors(subscription)
    return billing_period(
        interval=subscription.plan.interval,
        billing_time=subscription.billing_time,
        anchor=anchor,
        at=at,
        tz=subscription_timezone(subscription),
        clip_from=start,
    )


def subscription_charges_period(subscription: Any, at: datetime) -> Period:
    anchor, start = _anchors(subscription)
    return charges_period(
        interval=subscription.plan.interval,
        billing_time=subscription.billing_time,
        anchor=anchor,
        at=at,
        tz=subscription_timezone(subscription),
        bill_charges_monthly=bool(subscription.plan.bill_charges_monthly),
        clip_from=start,
    )


def trial_end(subscription: Any) -> datetime | None:
    """When the plan's free trial ends: trial_period days after the first start of the
    subscription chain (a plan change does not grant a new trial). None without a trial or
    before the subscription started."""
    trial_days = Decimal(subscription.plan.trial_period or 0)
    if trial_days <= 0:
        return None
    first = subscription
    seen = {first.pk}
    while getattr(first, "previous_subscription", None) is not None and first.previous_subscription.pk not in seen:
        first = first.previous_subscription
        seen.add(first.pk)
    started_at: datetime | None = first.started_at
    if started_at is None:
        return None
    return started_at.astimezone(UTC) + timedelta(seconds=int(trial_days * 86400))


def annualized_amount(amount: Decimal, interval: str) -> Decimal:
    """The plan's price over a year (weekly x52, monthly x12, ...), to compare two plans."""
    return Decimal(amount) * PERIODS_PER_YEAR[interval]
