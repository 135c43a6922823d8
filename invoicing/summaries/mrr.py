"""MRR's grouped fee rows, read from the per-day summary (PostgreSQL) after recomputing the
days the triggers marked dirty; elsewhere, or per customer, straight from the fees.

`mrr_rows(first=, end=, currency=)` gives the same rows as `fee_rows(...)` over the same days:
each row is currency, issued, interval, in_advance, period_from, period_to, amount, count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from django.db import connection
from django.db.models import Case, Count, DecimalField, ExpressionWrapper, F, Q, QuerySet, Sum, When

from plans.models import PlanInterval

from ..models import Fee, FeeType, InvoiceStatus
from .models import MrrDayRow, MrrDirtyDay
from .refresh import dirty_days_refresh

LONG_INTERVALS = [PlanInterval.QUARTERLY, PlanInterval.SEMIANNUAL, PlanInterval.YEARLY]
_MONEY = DecimalField(max_digits=40, decimal_places=20)
# pg_advisory_xact_lock key of the refresher (one at a time; readers queue behind it).
_REFRESH_LOCK = 0x4D52525355  # "MRRSU"
_FIELDS = ("currency", "issued", "interval", "in_advance", "period_from", "period_to", "amount", "count")


def subscription_fees(*, currency: str | None = None, external_customer_id: str | None = None) -> QuerySet[Fee]:
    fees = Fee.objects.filter(fee_type=FeeType.SUBSCRIPTION, invoice__status=InvoiceStatus.FINALIZED)
    if currency:
        fees = fees.filter(currency=currency.upper())
    if external_customer_id:
        fees = fees.filter(invoice__customer__external_id=external_customer_id)
    return fees


def fee_rows(fees: QuerySet[Fee]) -> Iterable[Mapping[str, Any]]:
    """One grouped pass over the fees: by issuing day (and, for the plans spread over months, by
    the fee's period), so the rows read back are a few per day, not one per fee."""
    recurring = ExpressionWrapper(F("amount") - F("precise_coupons_amount") + F("taxes_amount"), output_field=_MONEY)
    is_long = Q(subscription__plan__interval__in=LONG_INTERVALS)
    rows: Iterable[Mapping[str, Any]] = (
        fees.values(
            "currency",
            issued=F("invoice__issuing_date"),
            interval=F("subscription__plan__interval"),
            in_advance=F("subscription__plan__pay_in_advance"),
            period_from=Case(When(is_long, then=F("from_datetime")), default=None),
            period_to=Case(When(is_long, then=F("to_datetime")), default=None),
        )
        .annotate(amount=Sum(recurring), count=Count("id"))
        .order_by()
    )
    return rows


def summary_refresh() -> int:
    """Recompute the dirty days' rows; the number of days recomputed."""

    def rebuild(days: list[date]) -> None:
        rows = fee_rows(subscription_fees().filter(invoice__issuing_date__in=days))
        MrrDayRow.objects.bulk_create(
            [
                MrrDayRow(
                    issuing_date=row["issued"],
                    currency=row["currency"],
                    interval=row["interval"] or "",
                    in_advance=bool(row["in_advance"]),
                    period_from=row["period_from"],
                    period_to=row["period_to"],
                    amount=row["amount"],
                    count=row["count"],
                )
                for row in rows
            ],
            batch_size=2_000,
        )

    return dirty_days_refresh(
        dirty_table=MrrDirtyDay._meta.db_table, row_table=MrrDayRow._meta.db_table, lock=_REFRESH_LOCK, rebuild=rebuild
    )


def mrr_rows(
    *, first: date, end: date, currency: str | None = None, external_customer_id: str | None = None
) -> Iterable[Mapping[str, Any]]:
    """The grouped rows of the fees issued in [first, end)."""
    if connection.vendor != "postgresql" or external_customer_id:
        fees = subscription_fees(currency=currency, external_customer_id=external_customer_id)
        return fee_rows(fees.filter(invoice__issuing_date__gte=first, invoice__issuing_date__lt=end))
    summary_refresh()
    rows = MrrDayRow.objects.filter(issuing_date__gte=first, issuing_date__lt=end)
    if currency:
        rows = rows.filter(currency=currency.upper())
    return [
        dict(zip(_FIELDS, values, strict=True))
        for values in rows.values_list(
            "currency", "issuing_date", "interval", "in_advance", "period_from", "period_to", "amount", "count"
        )
    ]


__all__ = ["MrrDirtyDay", "mrr_rows", "summary_refresh"]
