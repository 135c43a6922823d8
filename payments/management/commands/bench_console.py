"""Measure the finance console's dashboard and receivables aging over many invoices; prints
figures, asserts nothing.

    DATABASE_URL=postgres://... python manage.py bench_console --invoices 100000

Creates its own customers, plan, subscriptions, invoices, fees and payments (external ids
prefixed `bench-console-`) and deletes them afterwards. Each figure is the median of --runs
after two warm-up calls. The baseline, in the same run: the same pages and figures computed
from the raw invoices, payments and fees (the summary rows switched off), and an admin page
that reads no invoices (what any admin page costs on this machine). The last line is JSON.
Compare figures within one run, never across machines.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.core.paginator import Paginator
from django.db import connection
from django.test import Client
from django.utils import timezone

from customers.models import Customer, Organization
from invoicing import analytics
from invoicing.models import Fee, FeeType, Invoice, InvoiceStatus
from invoicing.summaries import invoices as invoice_summary
from invoicing.summaries import mrr as mrr_summary
from payments import analytics as collected
from payments.admin_views import AGING_PAGE_SIZE
from payments.models import Payment, PaymentProviderName, PaymentStatus, PaymentTrigger
from plans.models import Plan, PlanInterval, Subscription, SubscriptionStatus

PREFIX = "bench-console-"


class Command(BaseCommand):
    help = "Benchmark the finance console's dashboard and receivables aging."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--invoices", type=int, default=100_000)
        parser.add_argument("--customers", type=int, default=1_000)
        parser.add_argument("--runs", type=int, default=7)

    def handle(self, *args: Any, **options: Any) -> None:
        Organization.current()
        stamp = f"{PREFIX}{timezone.now().timestamp():.0f}-"
        user = get_user_model().objects.create_superuser(f"{stamp}admin", "bench@tollgate.test", None)
        plan = Plan.objects.create(
            name="bench", code=f"{stamp}plan", interval=PlanInterval.MONTHLY, amount=Decimal(100), amount_currency="USD"
        )
        try:
            self._run(stamp, user, plan, options["invoices"], options["customers"], options["runs"])
        finally:
            customers = Customer.objects.filter(external_id__startswith=stamp)
            Payment.objects.filter(customer__in=customers).delete()
            Fee.objects.filter(invoice__customer__in=customers).delete()
            Invoice.objects.filter(customer__in=customers).delete()
            Subscription.objects.filter(customer__in=customers).delete()
            customers.delete()
            plan.delete()
            user.delete()

    def _timed(self, label: str, runs: int, call: Callable[[], Any]) -> float:
        call()  # warm: the first run pays for connections, caches and a summary refresh
        call()
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            call()
            samples.append(time.perf_counter() - started)
        median = statistics.median(samples) * 1000
        self.stdout.write(f"{label}: {median:.0f} ms (median of {runs})")
        return median

    def _run(self, stamp: str, user: Any, plan: Plan, invoice_count: int, customer_count: int, runs: int) -> None:
        today = timezone.localdate()
        started = time.perf_counter()
        customers = Customer.objects.bulk_create(
            [Customer(external_id=f"{stamp}{n}", name=f"Bench {n}", currency="USD") for n in range(customer_count)]
        )
        subscriptions = Subscription.objects.bulk_create(
            [
                Subscription(
                    external_id=f"{stamp}sub-{n}",
                    customer=customer,
                    plan=plan,
                    status=SubscriptionStatus.ACTIVE,
                    subscription_at=timezone.now() - timedelta(days=500),
                    started_at=timezone.now() - timedelta(days=500),
                )
                for n, customer in enumerate(customers)
            ]
        )
        invoices = []
        for n in range(invoice_count):
            issued = today - timedelta(days=n % 420)
            due = issued + timedelta(days=30)
            status = (
                InvoiceStatus.DRAFT if n % 50 == 0 else InvoiceStatus.VOIDED if n % 37 == 0 else InvoiceStatus.FINALIZED
            )
            # As in a real ledger: old invoices are nearly all paid, the last two months' less so.
            settled = n % 33 != 0 if (today - issued).days > 60 else n % 5 < 2
            paid = Decimal("100") if settled and status == InvoiceStatus.FINALIZED else Decimal(0)
            invoices.append(
                Invoice(
                    customer=customers[n % customer_count],
                    currency="EUR" if n % 5 == 0 else "USD",
                    status=status,
                    number=f"{stamp}{n:07d}",
                    issuing_date=issued,
                    payment_due_date=due,
                    payment_overdue=due < today and paid == 0 and status == InvoiceStatus.FINALIZED,
                    payment_status="succeeded" if paid else "pending",
                    total_amount=Decimal("100.00"),
                    total_paid_amount=paid,
                    finalized_at=timezone.now() if status != InvoiceStatus.DRAFT else None,
                )
            )
        Invoice.objects.bulk_create(invoices, batch_size=5_000)
        Fee.objects.bulk_create(
            [
                Fee(
                    invoice=invoice,
                    subscription=subscriptions[n % customer_count],
                    fee_type=FeeType.SUBSCRIPTION,
                    currency=invoice.currency,
                    amount=Decimal("100"),
                    precise_amount=Decimal("100"),
                )
                for n, invoice in enumerate(invoices)
            ],
            batch_size=5_000,
        )
        now = timezone.now()
        Payment.objects.bulk_create(
            [
                Payment(
                    invoice=invoice,
                    customer_id=invoice.customer_id,
                    provider=PaymentProviderName.MANUAL,
                    status=PaymentStatus.SUCCEEDED,
                    amount=invoice.total_paid_amount,
                    currency=invoice.currency,
                    trigger=PaymentTrigger.MANUAL,
                    reference="BENCH",
                    paid_at=now - timedelta(days=(now.date() - invoice.issuing_date).days),
                )
                for invoice in invoices
                if invoice.total_paid_amount
            ],
            batch_size=5_000,
        )
        if connection.vendor == "postgresql":
            # What autovacuum does after a bulk load: statistics and the visibility map.
            with connection.cursor() as cursor:
                for table in ("invoicing_invoice", "invoicing_fee", "payments_payment", "customers_customer"):
                    cursor.execute(f"VACUUM ANALYZE {table}")
        self.stdout.write(
            f"setup: {invoice_count} invoices, fees and their payments for {customer_count} customers "
            f"in {time.perf_counter() - started:.1f} s ({connection.vendor})"
        )

        # The summaries' first refresh recomputes every day the bulk insert marked dirty (a
        # migration does the same once); after it, a reader recomputes only what changed.
        tz_name = Organization.current().timezone or "UTC"
        refresh_started = time.perf_counter()
        days = mrr_summary.summary_refresh() + invoice_summary.summary_refresh() + collected.summary_refresh(tz_name)
        refresh_ms = (time.perf_counter() - refresh_started) * 1000
        self.stdout.write(f"summaries: first refresh of {days} days in {refresh_ms:.0f} ms")
        client = Client()
        client.force_login(user)
        figures: dict[str, float] = {}
        figures["admin_floor_ms"] = self._timed(
            "GET /admin/auth/group/ (an admin page reading no invoices: the floor)",
            runs,
            lambda: _ok(client.get("/admin/auth/group/")),
        )
        figures["dashboard_page_ms"] = self._timed(
            "GET /admin/ (dashboard page)", runs, lambda: _ok(client.get("/admin/"))
        )
        figures["aging_page_ms"] = self._timed(
            "GET /admin/console/aging/ (first page, totals of all)",
            runs,
            lambda: _ok(client.get("/admin/console/aging/")),
        )
        figures["dashboard_figures_ms"] = self._timed(
            "dashboard figures (summary rows)", runs, lambda: _dashboard_figures(today, tz_name)
        )
        figures["aging_figures_ms"] = self._timed(
            "aging figures: one page and every total (summary rows)", runs, lambda: _aging_figures(today)
        )
        with _raw():
            figures["dashboard_page_raw_ms"] = self._timed(
                "GET /admin/ from the raw invoices, payments and fees (baseline)",
                runs,
                lambda: _ok(client.get("/admin/")),
            )
            figures["dashboard_figures_raw_ms"] = self._timed(
                "dashboard figures from the raw rows (baseline)", runs, lambda: _dashboard_figures(today, tz_name)
            )
            figures["aging_raw_ms"] = self._timed(
                "aging figures, every customer's row, totals summed from them (baseline: the unpaged page)",
                runs,
                lambda: _aging_raw(today),
            )
            raw_dashboard, raw_aging = _dashboard_figures(today, tz_name), _aging_raw(today)
        equal = _dashboard_figures(today, tz_name) == raw_dashboard and _aging_figures(today)[1] == raw_aging[1]
        self.stdout.write(f"summary figures equal to the raw computation: {equal}")
        invoice = Invoice.objects.filter(
            customer__external_id__startswith=stamp, status=InvoiceStatus.FINALIZED, total_paid_amount=0
        ).first()
        assert invoice is not None

        def after_a_change() -> None:
            # A partial payment recorded and taken back: its day is recomputed by the next read.
            Invoice.objects.filter(pk=invoice.pk).update(total_paid_amount=Decimal("40"))
            Invoice.objects.filter(pk=invoice.pk).update(total_paid_amount=Decimal(0))
            _ok(client.get("/admin/"))

        figures["dashboard_after_change_ms"] = self._timed(
            "GET /admin/ after a payment on one invoice (one day recomputed)", runs, after_a_change
        )
        ratios = {
            "dashboard_page_vs_raw": figures["dashboard_page_raw_ms"] / figures["dashboard_page_ms"],
            "dashboard_figures_vs_raw": figures["dashboard_figures_raw_ms"] / figures["dashboard_figures_ms"],
            "aging_figures_vs_raw": figures["aging_raw_ms"] / figures["aging_figures_ms"],
        }
        for name, ratio in ratios.items():
            self.stdout.write(f"{name}: {ratio:.1f}x faster")
        self.stdout.write(
            json.dumps(
                {
                    "invoices": invoice_count,
                    "customers": customer_count,
                    "runs": runs,
                    **{name: round(value, 1) for name, value in figures.items()},
                    **{name: round(value, 2) for name, value in ratios.items()},
                    "figures_equal_raw": equal,
                }
            )
        )


def _dashboard_figures(today: date, tz_name: str) -> tuple[Any, ...]:
    """Every figure the dashboard shows (payments.admin_views.dashboard_context's reads)."""
    this_month = analytics.month_start(today)
    first, end = analytics.add_months(this_month, -11), analytics.add_months(this_month, 1)
    return (
        analytics.outstanding_and_overdue_by_currency(),
        analytics.invoiced_by_month(first=first, end=end),
        collected.collected_by_month(first=first, end=end, tz_name=tz_name),
        analytics.mrr(months=12, today=today),
        analytics.drafts_by_currency(),
        collected.failed_payments_by_currency(),
    )


def _aging_figures(today: date) -> tuple[Any, dict[str, dict[str, Decimal]]]:
    """The aging page's reads: its first page of customers, and the totals of all."""
    page = Paginator(analytics.aging_customers().values_list("id", flat=True), AGING_PAGE_SIZE).get_page(1)
    return analytics.receivables_aging(today=today, customer_ids=page.object_list), analytics.aging_totals(today=today)


def _aging_raw(today: date) -> tuple[Any, dict[str, dict[str, Decimal]]]:
    """The aging as computed before paging: every customer's row, the totals summed from them."""
    rows = analytics.receivables_aging(today=today)
    totals: dict[str, dict[str, Decimal]] = {}
    for row in rows:
        values = totals.setdefault(row.currency, dict.fromkeys((*analytics.AGING_BUCKETS, "total"), Decimal(0)))
        for name in analytics.AGING_BUCKETS:
            values[name] += row.buckets[name]
        values["total"] += row.total
    return rows, dict(sorted(totals.items()))


@contextmanager
def _raw() -> Iterator[None]:
    """The same selectors reading the invoices, payments and fees instead of the summary rows."""

    def fees_only(*, first: date, end: date, currency: str | None = None, external_customer_id: str | None = None):
        fees = mrr_summary.subscription_fees(currency=currency, external_customer_id=external_customer_id)
        return mrr_summary.fee_rows(fees.filter(invoice__issuing_date__gte=first, invoice__issuing_date__lt=end))

    with (
        mock.patch.object(invoice_summary, "summary_rows", lambda: None),
        mock.patch.object(collected, "use_summary", lambda: False),
        mock.patch.object(analytics, "mrr_rows", fees_only),
    ):
        yield


def _ok(response: Any) -> None:
    assert response.status_code == 200, response.status_code
