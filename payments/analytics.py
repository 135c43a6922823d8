"""Money collected, for the dashboard: succeeded payments by the day they were paid (manual ones
included), and the failed attempts still waiting for someone to act."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, time
from decimal import Decimal

from django.db.models import Count, Sum
from django.db.models.functions import TruncMonth

from invoicing.models import Invoice, InvoiceStatus
from invoicing.models import PaymentStatus as InvoicePaymentStatus

from .models import Payment, PaymentStatus


def local_midnight(day: date, tz_name: str) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zoneinfo.ZoneInfo(tz_name or "UTC"))


def collected_by_currency(*, first: date, end: date, tz_name: str) -> dict[str, Decimal]:
    """Succeeded payments with paid_at in [first, end), days in the organization's timezone."""
    rows = (
        Payment.objects.filter(
            status=PaymentStatus.SUCCEEDED,
            paid_at__gte=local_midnight(first, tz_name),
            paid_at__lt=local_midnight(end, tz_name),
        )
        .values("currency")
        .annotate(amount=Sum("amount"))
        .order_by("currency")
    )
    return {row["currency"]: row["amount"] for row in rows}


def collected_by_month(*, first: date, end: date, tz_name: str) -> dict[tuple[date, str], Decimal]:
    zone = zoneinfo.ZoneInfo(tz_name or "UTC")
    rows = (
        Payment.objects.filter(
            status=PaymentStatus.SUCCEEDED,
            paid_at__gte=local_midnight(first, tz_name),
            paid_at__lt=local_midnight(end, tz_name),
        )
        .annotate(month=TruncMonth("paid_at", tzinfo=zone))
        .values("month", "currency")
        .annotate(amount=Sum("amount"))
        .order_by()
    )
    return {(row["month"].date(), row["currency"]): row["amount"] for row in rows}


def failed_payments_by_currency() -> dict[str, int]:
    """Finalized invoices whose latest collection attempt failed (payment_status `failed`)."""
    rows = (
        Invoice.objects.filter(status=InvoiceStatus.FINALIZED, payment_status=InvoicePaymentStatus.FAILED)
        .values("currency")
        .annotate(count=Count("id"))
        .order_by("currency")
    )
    return {row["currency"]: row["count"] for row in rows}
