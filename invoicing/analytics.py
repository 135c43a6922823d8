"""Revenue reads: what was invoiced, what is still owed, and MRR, per currency and month.

Shared by the analytics API (Lago's /api/v1/analytics/*) and the admin dashboard, so a figure
on the dashboard is the API's figure. Amounts are Decimal in major units; months are the first
day of the month of the invoice's issuing date (a date, already in the customer's terms).
Voided and draft invoices never count.

MRR follows Lago's definition: the subscription fees (net of their coupons share, taxes
included) of finalized invoices; a monthly plan's fee counts whole in the month it is issued, a
weekly plan's average fee x 4.33, and a quarterly, semiannual or yearly fee is spread over the
months its period covers: backwards from the issuing month when billed in arrears, forwards
when billed in advance (the first month weighted by the days left in it, as Lago does). Lago
counts a period's months as its length / 30.44 days; Tollgate counts calendar months (a full
year is exactly 12, a quarter exactly 3, a prorated first quarter of 2.5 months 2.5), so a
yearly fee of 1,200 is 100 a month and a quarterly one of 300 also 100, to the cent.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, cast

from django.db.models import Count, DecimalField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from customers.models import Customer
from plans.models import PlanInterval

from .models import CreditNote, Fee, FeeType, Invoice, InvoiceStatus
from .summaries.invoices import due_expression, invoiced_rows, outstanding_q, outstanding_rows
from .summaries.mrr import mrr_rows

DEFAULT_MONTHS = 12
# A `months` filter reaches back at most this far (a client's months=10**9 is 100 years, not an error).
MAX_MONTHS = 1200
# Lago's constant: weeks in a month.
WEEKS_PER_MONTH = Decimal("4.33")
_SPREAD_MONTHS = {PlanInterval.QUARTERLY: 3, PlanInterval.SEMIANNUAL: 6, PlanInterval.YEARLY: 12}
_MONEY = DecimalField(max_digits=40, decimal_places=20)


@dataclass(frozen=True)
class MonthFigure:
    month: date
    currency: str
    amount: Decimal
    count: int = 0
    # invoice_collection: the payment status; invoiced_usage: the billable metric code.
    key: str | None = None
    invoice_ids: list[str] = field(default_factory=list)


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_window(months: int | None, today: date | None = None) -> tuple[date, date]:
    """Lago's `months` filter: this month and the months-1 before it; [first, end) as dates."""
    this_month = month_start(today or timezone.localdate())
    count = min(max(int(months or DEFAULT_MONTHS), 1), MAX_MONTHS)
    return add_months(this_month, -(count - 1)), add_months(this_month, 1)


def _as_date(value: date) -> date:
    return value.date() if hasattr(value, "date") and callable(value.date) else value


def finalized_invoices(*, currency: str | None = None, external_customer_id: str | None = None) -> QuerySet[Invoice]:
    invoices = Invoice.objects.filter(status=InvoiceStatus.FINALIZED)
    if currency:
        invoices = invoices.filter(currency=currency.upper())
    if external_customer_id:
        invoices = invoices.filter(customer__external_id=external_customer_id)
    return invoices


def _due_expression() -> ExpressionWrapper:
    return due_expression()


# --- Lago's analytics --------------------------------------------------------------------------


def gross_revenue(
    *,
    months: int | None = None,
    currency: str | None = None,
    external_customer_id: str | None = None,
    today: date | None = None,
) -> list[MonthFigure]:
    """Per month and currency: finalized invoices' totals minus what their credit notes refunded,
    plus pay-in-advance fees billed without an invoice. Months without revenue are left out."""
    first, end = month_window(months, today)
    invoices = finalized_invoices(currency=currency, external_customer_id=external_customer_id).filter(
        issuing_date__gte=first, issuing_date__lt=end
    )
    totals: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    counts: dict[tuple[date, str], int] = defaultdict(int)
    for row in (
        invoices.annotate(month=TruncMonth("issuing_date"))
        .values("month", "currency")
        .annotate(amount=Sum("total_amount"), count=Count("id"))
        .order_by()
    ):
        key = (_as_date(row["month"]), row["currency"])
        totals[key] += row["amount"]
        counts[key] += row["count"]
    refunds = CreditNote.objects.filter(invoice__in=invoices, refund_amount__gt=0)
    for refund in (
        refunds.annotate(month=TruncMonth("invoice__issuing_date"))
        .values("month", "currency")
        .annotate(amount=Sum("refund_amount"))
        .order_by()
    ):
        totals[(_as_date(refund["month"]), refund["currency"])] -= refund["amount"]
    instant = Fee.objects.filter(invoice__isnull=True, pay_in_advance=True, subscription__isnull=False).filter(
        created_at__date__gte=first, created_at__date__lt=end
    )
    if currency:
        instant = instant.filter(currency=currency.upper())
    if external_customer_id:
        instant = instant.filter(subscription__customer__external_id=external_customer_id)
    for fee in (
        instant.annotate(month=TruncMonth("created_at"))
        .values("month", "currency")
        .annotate(amount=Sum("amount"))
        .order_by()
    ):
        totals[(_as_date(fee["month"]), fee["currency"])] += fee["amount"]
    return [
        MonthFigure(month=month, currency=code, amount=amount, count=counts[(month, code)])
        for (month, code), amount in sorted(totals.items())
    ]


def invoiced_usage(
    *,
    months: int | None = None,
    currency: str | None = None,
    external_customer_id: str | None = None,
    today: date | None = None,
) -> list[MonthFigure]:
    """Per month, currency and billable metric code: usage (charge) fees on finalized invoices."""
    first, end = month_window(months, today)
    fees = Fee.objects.filter(
        fee_type=FeeType.CHARGE,
        invoice__status=InvoiceStatus.FINALIZED,
        invoice__issuing_date__gte=first,
        invoice__issuing_date__lt=end,
    )
    if currency:
        fees = fees.filter(currency=currency.upper())
    if external_customer_id:
        fees = fees.filter(invoice__customer__external_id=external_customer_id)
    rows = (
        fees.annotate(month=TruncMonth("invoice__issuing_date"))
        .values("month", "currency", "charge__billable_metric__code")
        .annotate(amount=Sum("amount"))
        .order_by("month", "currency", "charge__billable_metric__code")
    )
    return [
        MonthFigure(
            month=_as_date(row["month"]),
            currency=row["currency"],
            amount=row["amount"],
            key=row["charge__billable_metric__code"],
        )
        for row in rows
    ]


def invoice_collection(
    *, months: int | None = None, currency: str | None = None, today: date | None = None
) -> list[MonthFigure]:
    """Per month, currency and payment status: how many finalized invoices and their totals."""
    first, end = month_window(months, today)
    rows = (
        finalized_invoices(currency=currency)
        .filter(issuing_date__gte=first, issuing_date__lt=end)
        .annotate(month=TruncMonth("issuing_date"))
        .values("month", "currency", "payment_status")
        .annotate(amount=Sum("total_amount"), count=Count("id"))
        .order_by("month", "currency", "payment_status")
    )
    return [
        MonthFigure(
            month=_as_date(row["month"]),
            currency=row["currency"],
            amount=row["amount"],
            count=row["count"],
            key=row["payment_status"],
        )
        for row in rows
    ]


def overdue_balance(
    *,
    months: int | None = None,
    currency: str | None = None,
    external_customer_id: str | None = None,
    today: date | None = None,
) -> list[MonthFigure]:
    """Per month of the due date and currency: what is left to pay on invoices flagged overdue
    (the flag the daily overdue sweep keeps), with their ids."""
    first, end = month_window(months, today)
    invoices = (
        finalized_invoices(currency=currency, external_customer_id=external_customer_id)
        .filter(payment_overdue=True, payment_due_date__gte=first, payment_due_date__lt=end)
        .filter(outstanding_q())
    )
    figures: dict[tuple[date, str], list[tuple[str, Decimal]]] = defaultdict(list)
    for invoice_id, code, due_date, due in invoices.annotate(due=_due_expression()).values_list(
        "id", "currency", "payment_due_date", "due"
    ):
        figures[(month_start(due_date), code)].append((str(invoice_id), due))
    return [
        MonthFigure(
            month=month,
            currency=code,
            amount=sum((due for _, due in rows), Decimal(0)),
            invoice_ids=sorted(invoice_id for invoice_id, _ in rows),
        )
        for (month, code), rows in sorted(figures.items())
    ]


def calendar_months(start: date, end: date) -> Decimal:
    """Months from start to end (exclusive): whole calendar months, then the rest as a fraction
    of the month it falls in (2026-01-01..2026-04-01 is 3; 2026-01-16..2026-04-01 is 2.516...)."""
    whole = (end.year - start.year) * 12 + end.month - start.month
    while whole > 0 and _shift(start, whole) > end:
        whole -= 1
    anchor = _shift(start, whole)
    if anchor >= end:
        return Decimal(whole)
    following = _shift(start, whole + 1)
    return Decimal(whole) + Decimal((end - anchor).days) / Decimal((following - anchor).days)


def _shift(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's last day (Jan 31 + 1 -> Feb 28)."""
    first = add_months(month_start(day), months)
    last = (add_months(first, 1) - timedelta(days=1)).day
    return first.replace(day=min(day.day, last))


def _spread(
    amount: Decimal, issuing_date: date, billed_months: Decimal, in_advance: bool
) -> Iterable[tuple[date, Decimal]]:
    """One fee of a long plan as monthly shares (Lago's arithmetic, see the module docstring)."""
    if billed_months <= 0 or amount <= 0:
        yield month_start(issuing_date), amount
        return
    slots = max(math.ceil(billed_months), 1)
    share = amount / billed_months
    issuing_month = month_start(issuing_date)
    if not in_advance:
        for index in range(slots):
            part = share if index < slots - 1 else amount - share * (slots - 1)
            yield add_months(issuing_month, -index), part
        return
    # In advance: the fee covers billed_months from the issuing date on; the issuing month gets
    # the share of the days left in it, each next month a full share, the last what remains.
    next_month = add_months(issuing_month, 1)
    first_fraction = Decimal((next_month - issuing_date).days) / Decimal((next_month - issuing_month).days)
    remaining = amount
    month = issuing_month
    part = min(share * first_fraction, remaining)
    while True:
        yield month, part
        remaining -= part
        if remaining <= amount * Decimal("1e-12") or month >= add_months(issuing_month, slots):
            return
        month = add_months(month, 1)
        part = min(share, remaining)


def mrr(
    *,
    months: int | None = None,
    currency: str | None = None,
    external_customer_id: str | None = None,
    today: date | None = None,
) -> list[MonthFigure]:
    """Monthly recurring revenue per month and currency (Lago's definition, module docstring)."""
    first, end = month_window(months, today)
    # A yearly fee issued up to 12 months either side of the window can have a share in it. The
    # rows come from the per-day summary (invoicing.summaries), the fees' grouped query's answer.
    rows = mrr_rows(
        first=add_months(first, -12),
        end=add_months(end, 12),
        currency=currency,
        external_customer_id=external_customer_id,
    )
    totals: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    weekly: dict[tuple[date, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for row in rows:
        code, issued, interval, amount = row["currency"], row["issued"], row["interval"], row["amount"]
        month = month_start(issued)
        if interval in _SPREAD_MONTHS:
            period_from, period_to = row["period_from"], row["period_to"]
            if period_from and period_to and period_to > period_from:
                billed_months = calendar_months(period_from.date(), period_to.date())
            else:
                billed_months = Decimal(_SPREAD_MONTHS[interval])
            for share_month, part in _spread(amount, issued, billed_months, row["in_advance"]):
                if first <= share_month < end:
                    totals[(share_month, code)] += part
        elif not first <= month < end:
            continue
        elif interval == PlanInterval.WEEKLY:
            weekly[(month, code)][0] += amount
            weekly[(month, code)][1] += row["count"]
        else:  # monthly
            totals[(month, code)] += amount
    for key, (amount, count) in weekly.items():
        totals[key] += amount / count * WEEKS_PER_MONTH
    return [MonthFigure(month=month, currency=code, amount=amount) for (month, code), amount in sorted(totals.items())]


# --- Dashboard figures ---------------------------------------------------------------------------


def outstanding_and_overdue_by_currency() -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """Still due per currency, and the part of it on invoices flagged overdue, from one read of
    the summary rows (invoicing.summaries.invoices)."""
    outstanding: dict[str, Decimal] = defaultdict(Decimal)
    overdue: dict[str, Decimal] = defaultdict(Decimal)
    for row in outstanding_rows():
        outstanding[row["currency"]] += row["amount"]
        if row["payment_overdue"]:
            overdue[row["currency"]] += row["amount"]
    return dict(sorted(outstanding.items())), dict(sorted(overdue.items()))


def outstanding_by_currency() -> dict[str, Decimal]:
    """Still due per currency."""
    return outstanding_and_overdue_by_currency()[0]


def overdue_by_currency() -> dict[str, Decimal]:
    """Still due on invoices flagged overdue, per currency."""
    return outstanding_and_overdue_by_currency()[1]


def invoiced_by_currency(*, first: date, end: date) -> dict[str, Decimal]:
    """Totals of the finalized invoices issued in [first, end)."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in invoiced_rows(first=first, end=end):
        totals[row["currency"]] += row["amount"]
    return dict(sorted(totals.items()))


def invoiced_by_month(*, first: date, end: date) -> dict[tuple[date, str], Decimal]:
    totals: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for row in invoiced_rows(first=first, end=end):
        totals[(month_start(row["issuing_date"]), row["currency"])] += row["amount"]
    return dict(totals)


def drafts_by_currency() -> dict[str, int]:
    rows = (
        Invoice.objects.filter(status=InvoiceStatus.DRAFT)
        .values("currency")
        .annotate(count=Count("id"))
        .order_by("currency")
    )
    return {row["currency"]: row["count"] for row in rows}


AGING_BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")


def aging_bucket(days_past_due: int) -> str:
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "1-30"
    if days_past_due <= 60:
        return "31-60"
    if days_past_due <= 90:
        return "61-90"
    return "90+"


@dataclass
class AgingRow:
    customer_id: str
    external_id: str
    name: str
    currency: str
    buckets: dict[str, Decimal]

    @property
    def total(self) -> Decimal:
        return sum(self.buckets.values(), Decimal(0))


def _aging_bounds(today: date) -> dict[str, Q]:
    due = "payment_due_date"
    return {
        "current": Q(**{f"{due}__gte": today}),
        "1-30": Q(**{f"{due}__lt": today, f"{due}__gte": today - timedelta(days=30)}),
        "31-60": Q(**{f"{due}__lt": today - timedelta(days=30), f"{due}__gte": today - timedelta(days=60)}),
        "61-90": Q(**{f"{due}__lt": today - timedelta(days=60), f"{due}__gte": today - timedelta(days=90)}),
        "90+": Q(**{f"{due}__lt": today - timedelta(days=90)}),
    }


def receivables_aging(*, today: date | None = None, customer_ids: Iterable[Any] | None = None) -> list[AgingRow]:
    """Outstanding per customer and currency, by days past the due date. One grouped query:
    each bucket is a conditional sum over the outstanding invoices (of `customer_ids` only, for
    one page of aging_customers())."""
    today = today or timezone.localdate()
    due = _due_expression()
    bounds = _aging_bounds(today)
    aggregates = {f"b{index}": Sum(due, filter=bounds[name]) for index, name in enumerate(AGING_BUCKETS)}
    invoices = Invoice.objects.filter(outstanding_q())
    if customer_ids is not None:
        invoices = invoices.filter(customer_id__in=list(customer_ids))
    rows = (
        invoices.values("customer_id", "customer__external_id", "customer__name", "currency")
        .annotate(**aggregates)
        .order_by("customer__external_id", "currency")
    )
    return [
        AgingRow(
            customer_id=str(row["customer_id"]),
            external_id=row["customer__external_id"],
            name=row["customer__name"],
            currency=row["currency"],
            buckets={
                name: cast(dict[str, Any], row)[f"b{index}"] or Decimal(0) for index, name in enumerate(AGING_BUCKETS)
            },
        )
        for row in rows
    ]


def aging_customers() -> QuerySet[Customer]:
    """The customers who owe something, by external id: the aging page's rows, page by page
    (each customer's check is a probe of the invoice_customer_due_idx index)."""
    owing = Invoice.objects.filter(outstanding_q(), customer=OuterRef("pk"))
    return Customer.objects.filter(Exists(owing)).order_by("external_id")


def aging_totals(*, today: date | None = None) -> dict[str, dict[str, Decimal]]:
    """Per currency, each bucket's outstanding and the total, over every customer (the sums of
    receivables_aging's rows, read from the summary rows)."""
    today = today or timezone.localdate()
    totals: dict[str, dict[str, Decimal]] = {}
    for row in outstanding_rows():
        currency_totals = totals.setdefault(row["currency"], dict.fromkeys((*AGING_BUCKETS, "total"), Decimal(0)))
        currency_totals[aging_bucket((today - row["payment_due_date"]).days)] += row["amount"]
        currency_totals["total"] += row["amount"]
    return dict(sorted(totals.items()))
