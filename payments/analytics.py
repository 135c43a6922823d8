"""Money collected, for the dashboard: succeeded payments by the day they were paid (manual ones
included), and the failed attempts still waiting for someone to act.

On PostgreSQL the collected figures are read from PaymentDayRow (one row per local day and
currency) after recomputing the days the trigger of migration 0014 marked dirty, so they are
the payments' grouped query's answer, never an approximation; elsewhere from the payments.
"""

from __future__ import annotations

import zoneinfo
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import reduce
from operator import or_
from typing import Any

from django.db import connection
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate

from invoicing.models import Invoice, InvoiceStatus
from invoicing.models import PaymentStatus as InvoicePaymentStatus
from invoicing.summaries.refresh import dirty_days_refresh

from .models import Payment, PaymentDayRow, PaymentStatus

# pg_advisory_xact_lock key of the refresher (one at a time; readers queue behind it).
_REFRESH_LOCK = 0x434F4C4C53554D  # "COLLSUM"


def local_midnight(day: date, tz_name: str) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zoneinfo.ZoneInfo(tz_name or "UTC"))


def _local_days(utc_days: set[date], zone: zoneinfo.ZoneInfo) -> set[date]:
    """The organization's days that a UTC day overlaps (one or two)."""
    days = set()
    for day in utc_days:
        start = datetime.combine(day, time.min, tzinfo=UTC)
        days.add(start.astimezone(zone).date())
        days.add((start + timedelta(days=1, microseconds=-1)).astimezone(zone).date())
    return days


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Sorted days as [first, end) runs of consecutive days."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], day + timedelta(days=1))
        else:
            runs.append((day, day + timedelta(days=1)))
    return runs


def summary_refresh(tz_name: str) -> int:
    """Recompute the rows of the local days the dirty UTC days touch; the number of days
    recomputed. Rows kept for another time zone are dropped and every day recomputed."""
    zone = zoneinfo.ZoneInfo(tz_name or "UTC")

    def reset(cursor: Any) -> None:
        cursor.execute("DELETE FROM payments_paymentdayrow")
        cursor.execute(
            "INSERT INTO payments_paymentdirtyday (day) SELECT DISTINCT (paid_at AT TIME ZONE 'UTC')::date"
            " FROM payments_payment WHERE status = 'succeeded' AND paid_at IS NOT NULL"
        )

    def rebuild(days: list[date]) -> None:
        ranges = [
            Q(paid_at__gte=local_midnight(first, zone.key), paid_at__lt=local_midnight(end, zone.key))
            for first, end in _runs(days)
        ]
        rows = (
            Payment.objects.filter(reduce(or_, ranges), status=PaymentStatus.SUCCEEDED)
            .annotate(day=TruncDate("paid_at", tzinfo=zone))
            .values("day", "currency")
            .annotate(amount=Sum("amount"), count=Count("id"))
            .order_by()
        )
        PaymentDayRow.objects.bulk_create(
            [
                PaymentDayRow(
                    day=row["day"],
                    time_zone=zone.key,
                    currency=row["currency"],
                    amount=row["amount"],
                    count=row["count"],
                )
                for row in rows
            ],
            batch_size=2_000,
        )

    return dirty_days_refresh(
        dirty_table="payments_paymentdirtyday",
        row_table="payments_paymentdayrow",
        lock=_REFRESH_LOCK,
        rebuild=rebuild,
        day_column="day",
        days_of=lambda utc_days: _local_days(utc_days, zone),
        stale=("EXISTS (SELECT 1 FROM payments_paymentdayrow WHERE time_zone <> %s)", [zone.key]),
        reset=reset,
    )


def use_summary() -> bool:
    """Whether the figures come from the summary rows (PostgreSQL: its trigger keeps them)."""
    return connection.vendor == "postgresql"


def _collected_days(*, first: date, end: date, tz_name: str) -> list[tuple[date, str, Decimal]]:
    """(local day, currency, amount) of the succeeded payments paid in [first, end)."""
    zone = zoneinfo.ZoneInfo(tz_name or "UTC")
    if use_summary():
        summary_refresh(zone.key)
        return list(
            PaymentDayRow.objects.filter(time_zone=zone.key, day__gte=first, day__lt=end).values_list(
                "day", "currency", "amount"
            )
        )
    # Straight from the payments: grouped by local day, as the summary rows are.
    rows = (
        Payment.objects.filter(
            status=PaymentStatus.SUCCEEDED,
            paid_at__gte=local_midnight(first, tz_name),
            paid_at__lt=local_midnight(end, tz_name),
        )
        .annotate(day=TruncDate("paid_at", tzinfo=zone))
        .values("day", "currency")
        .annotate(amount=Sum("amount"))
        .order_by()
    )
    return [(row["day"], row["currency"], row["amount"]) for row in rows]


def collected_by_currency(*, first: date, end: date, tz_name: str) -> dict[str, Decimal]:
    """Succeeded payments with paid_at in [first, end), days in the organization's timezone."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for _, code, amount in _collected_days(first=first, end=end, tz_name=tz_name):
        totals[code] += amount
    return dict(sorted(totals.items()))


def collected_by_month(*, first: date, end: date, tz_name: str) -> dict[tuple[date, str], Decimal]:
    totals: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for day, code, amount in _collected_days(first=first, end=end, tz_name=tz_name):
        totals[(day.replace(day=1), code)] += amount
    return dict(totals)


def failed_payments_by_currency() -> dict[str, int]:
    """Finalized invoices whose latest collection attempt failed (payment_status `failed`)."""
    rows = (
        Invoice.objects.filter(status=InvoiceStatus.FINALIZED, payment_status=InvoicePaymentStatus.FAILED)
        .values("currency")
        .annotate(count=Count("id"))
        .order_by("currency")
    )
    return {row["currency"]: row["count"] for row in rows}
