"""The dashboard's Outstanding, Overdue and Invoiced figures and the aging totals, read from
per-day summary rows (PostgreSQL) after recomputing the days the triggers marked dirty;
elsewhere straight from the invoices. Either way the figures are the invoices' grouped query's.

An InvoiceDayRow is what `day_rows` gives for one issuing day: finalized invoices grouped by
currency, due date and overdue flag, with their totals (invoiced) and what is still due on them
(outstanding: analytics.outstanding_q). The triggers of migration 0014 mark a day dirty in the
transaction of any change of a column these rows read (status, issuing or due date, currency,
totals, what was paid, payment status, the overdue flag), so a void, a payment, a partial
payment or a credit note that moves what is due is seen by the next read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from django.db import connection
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Q, QuerySet, Sum

from ..models import Invoice, InvoiceStatus, PaymentStatus
from .models import InvoiceDayRow, InvoiceDirtyDay
from .refresh import dirty_days_refresh

_MONEY = DecimalField(max_digits=40, decimal_places=20)
# pg_advisory_xact_lock key of the refresher (one at a time; readers queue behind it).
_REFRESH_LOCK = 0x494E5653554D  # "INVSUM"


def outstanding_q() -> Q:
    """Still due: finalized (never voided or draft), not paid, something left to pay."""
    return (
        Q(status=InvoiceStatus.FINALIZED)
        & ~Q(payment_status=PaymentStatus.SUCCEEDED)
        & Q(total_amount__gt=F("total_paid_amount"))
    )


def due_expression() -> ExpressionWrapper:
    return ExpressionWrapper(F("total_amount") - F("total_paid_amount"), output_field=_MONEY)


def day_rows(invoices: QuerySet[Invoice]) -> Iterable[Mapping[str, Any]]:
    """One grouped pass over finalized invoices: a few rows per issuing day."""
    outstanding = outstanding_q()
    rows: Iterable[Mapping[str, Any]] = (
        invoices.filter(status=InvoiceStatus.FINALIZED)
        .values("issuing_date", "currency", "payment_due_date", "payment_overdue")
        .annotate(
            invoiced_amount=Sum("total_amount"),
            invoiced_count=Count("id"),
            outstanding_amount=Sum(due_expression(), filter=outstanding),
            outstanding_count=Count("id", filter=outstanding),
        )
        .order_by()
    )
    return rows


def summary_refresh() -> int:
    """Recompute the dirty days' rows; the number of days recomputed."""

    def rebuild(days: list[date]) -> None:
        InvoiceDayRow.objects.bulk_create(
            [
                InvoiceDayRow(
                    issuing_date=row["issuing_date"],
                    currency=row["currency"],
                    payment_due_date=row["payment_due_date"],
                    payment_overdue=row["payment_overdue"],
                    invoiced_amount=row["invoiced_amount"],
                    invoiced_count=row["invoiced_count"],
                    outstanding_amount=row["outstanding_amount"] or 0,
                    outstanding_count=row["outstanding_count"],
                )
                for row in day_rows(Invoice.objects.filter(issuing_date__in=days))
            ],
            batch_size=2_000,
        )

    return dirty_days_refresh(
        dirty_table=InvoiceDirtyDay._meta.db_table,
        row_table=InvoiceDayRow._meta.db_table,
        lock=_REFRESH_LOCK,
        rebuild=rebuild,
    )


def summary_rows() -> QuerySet[Any] | None:
    """The fresh summary rows (PostgreSQL), or None where the invoices are read directly."""
    if connection.vendor != "postgresql":
        return None
    summary_refresh()
    return InvoiceDayRow.objects.all()


def invoiced_rows(*, first: date, end: date) -> Iterable[Mapping[str, Any]]:
    """Rows of issuing_date, currency, amount over the finalized invoices issued in [first, end)."""
    rows = summary_rows()
    if rows is None:
        return (
            Invoice.objects.filter(status=InvoiceStatus.FINALIZED, issuing_date__gte=first, issuing_date__lt=end)
            .values("issuing_date", "currency")
            .annotate(amount=Sum("total_amount"))
            .order_by()
        )
    return (
        rows.filter(issuing_date__gte=first, issuing_date__lt=end)
        .values("issuing_date", "currency")
        .annotate(amount=Sum("invoiced_amount"))
        .order_by()
    )


def outstanding_rows() -> QuerySet[Any]:
    """What is due, grouped by currency, due date and overdue flag (a few rows per day)."""
    rows = summary_rows()
    if rows is None:
        return (
            Invoice.objects.filter(outstanding_q())
            .values("currency", "payment_due_date", "payment_overdue")
            .annotate(amount=Sum(due_expression()))
            .order_by()
        )
    return (
        rows.filter(outstanding_count__gt=0)
        .values("currency", "payment_due_date", "payment_overdue")
        .annotate(amount=Sum("outstanding_amount"))
        .order_by()
    )


__all__ = ["InvoiceDirtyDay", "invoiced_rows", "outstanding_rows", "summary_refresh"]
