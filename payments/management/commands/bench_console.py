"""Measure the finance console's dashboard and receivables aging over many invoices; prints
figures, asserts nothing.

    DATABASE_URL=postgres://... python manage.py bench_console --invoices 100000

Creates its own customers, plan, subscriptions, invoices, fees and payments (external ids
prefixed `bench-console-`) and deletes them afterwards. Each figure is the median of --runs.
Compare figures within one run, never across machines.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django.test import Client
from django.utils import timezone

from customers.models import Customer, Organization
from invoicing import analytics
from invoicing.models import Fee, FeeType, Invoice, InvoiceStatus
from invoicing.summaries import mrr as mrr_summary
from payments.models import Payment, PaymentProviderName, PaymentStatus, PaymentTrigger
from plans.models import Plan, PlanInterval, Subscription, SubscriptionStatus

PREFIX = "bench-console-"


class Command(BaseCommand):
    help = "Benchmark the finance console's dashboard and receivables aging."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--invoices", type=int, default=100_000)
        parser.add_argument("--customers", type=int, default=1_000)
        parser.add_argument("--runs", type=int, default=5)

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
        call()  # warm: the first run pays for connections and caches, not for the query
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
        connection.cursor().execute("ANALYZE") if connection.vendor == "postgresql" else None
        self.stdout.write(
            f"setup: {invoice_count} invoices, fees and their payments for {customer_count} customers "
            f"in {time.perf_counter() - started:.1f} s ({connection.vendor})"
        )

        # The MRR summary's first refresh recomputes every day the bulk insert marked dirty (a
        # migration does the same once); after it, a reader recomputes only what changed.
        refresh_started = time.perf_counter()
        days = mrr_summary.summary_refresh()
        refresh_ms = (time.perf_counter() - refresh_started) * 1000
        self.stdout.write(f"MRR summary: first refresh of {days} issuing days in {refresh_ms:.0f} ms")
        client = Client()
        client.force_login(user)
        self._timed("dashboard figures (selectors)", runs, lambda: _dashboard_selectors(today))
        self._timed("GET /admin/ (dashboard page)", runs, lambda: _ok(client.get("/admin/")))
        self._timed("receivables aging (selector)", runs, lambda: analytics.receivables_aging(today=today))
        self._timed("GET /admin/console/aging/", runs, lambda: _ok(client.get("/admin/console/aging/")))
        self._timed(
            "GET /admin/invoicing/invoice/?preset=unpaid",
            runs,
            lambda: _ok(client.get("/admin/invoicing/invoice/", {"preset": "unpaid"})),
        )
        summary_ms = self._timed(
            "MRR, 12 months (selector, summary rows)", runs, lambda: analytics.mrr(months=12, today=today)
        )
        direct_ms = self._timed("MRR, 12 months (fees, no summary)", runs, lambda: _mrr_from_fees(today))
        self.stdout.write(f"MRR summary vs fees: {direct_ms / summary_ms:.1f}x faster")
        invoice = Invoice.objects.filter(
            customer__external_id__startswith=stamp, status=InvoiceStatus.FINALIZED
        ).first()
        assert invoice is not None

        def after_a_void() -> None:
            # One invoice voided and back: its day is recomputed by the next read.
            Invoice.objects.filter(pk=invoice.pk).update(status=InvoiceStatus.VOIDED)
            Invoice.objects.filter(pk=invoice.pk).update(status=InvoiceStatus.FINALIZED)
            analytics.mrr(months=12, today=today)

        self._timed("MRR, 12 months, after a change to one day", runs, after_a_void)


def _dashboard_selectors(today: Any) -> None:
    analytics.outstanding_by_currency()
    analytics.overdue_by_currency()
    analytics.invoiced_by_month(first=analytics.add_months(analytics.month_start(today), -11), end=today)


def _mrr_from_fees(today: Any) -> None:
    """analytics.mrr's figures as it computed them before the summary: from the fees."""
    first, end = analytics.month_window(12, today)
    fees = mrr_summary.subscription_fees().filter(
        invoice__issuing_date__gte=analytics.add_months(first, -12),
        invoice__issuing_date__lt=analytics.add_months(end, 12),
    )
    list(mrr_summary.fee_rows(fees))


def _ok(response: Any) -> None:
    assert response.status_code == 200, response.status_code
