"""Measure the payments hot paths on the current database; prints figures, asserts nothing.

    DATABASE_URL=postgres://... python manage.py bench_payments --invoices 20000

Creates its own customer and invoices (external ids prefixed `bench-pay-`) and deletes them
afterwards. Compare figures within one run, never across machines.
"""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django.test import Client
from django.utils import timezone

from customers.models import ApiKey, Customer, Organization, generate_api_key, hash_api_key
from invoicing.models import Invoice, InvoiceStatus
from payments import services
from payments.models import Payment

PREFIX = "bench-pay-"


class Command(BaseCommand):
    help = "Benchmark manual payments, the payments list and the overdue sweep."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--invoices", type=int, default=20_000)
        parser.add_argument("--payments", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        Organization.current()
        customer = Customer.objects.create(external_id=f"{PREFIX}{timezone.now().timestamp()}", name="bench")
        raw_key = generate_api_key()
        api_key = ApiKey.objects.create(name="bench", display_prefix=raw_key[:10], key_hash=hash_api_key(raw_key))
        try:
            self._run(customer, raw_key, options["invoices"], options["payments"])
        finally:
            Payment.objects.filter(customer=customer).delete()
            Invoice.objects.filter(customer=customer).delete()
            customer.delete()
            api_key.delete()

    def _run(self, customer: Customer, raw_key: str, invoice_count: int, payment_count: int) -> None:
        today = timezone.now().date()
        total = Decimal("100.00")
        started = time.perf_counter()
        Invoice.objects.bulk_create(
            [
                Invoice(
                    customer=customer,
                    currency="USD",
                    status=InvoiceStatus.FINALIZED,
                    number=f"BENCH-{n:07d}",
                    issuing_date=today - timedelta(days=40),
                    # Half past due, half not yet due.
                    payment_due_date=today - timedelta(days=10) if n % 2 else today + timedelta(days=10),
                    total_amount=total,
                )
                for n in range(invoice_count)
            ],
            batch_size=5_000,
        )
        self.stdout.write(f"setup: {invoice_count} invoices in {time.perf_counter() - started:.1f} s")

        invoice_ids = list(Invoice.objects.filter(customer=customer).values_list("pk", flat=True)[:payment_count])
        started = time.perf_counter()
        for invoice_id in invoice_ids:
            services.payment_create_manual(invoice_id=invoice_id, amount_cents=4_000, reference="BENCH")
        elapsed = time.perf_counter() - started
        rate, each_ms = len(invoice_ids) / elapsed, elapsed / len(invoice_ids) * 1000
        self.stdout.write(f"manual payment service: {rate:,.0f} payments/s ({each_ms:.2f} ms each)")

        client = Client(headers={"authorization": f"Bearer {raw_key}"})
        for per_page in (20, 100):
            runs = 50
            started = time.perf_counter()
            for _ in range(runs):
                response = client.get(
                    "/api/v1/payments", {"external_customer_id": customer.external_id, "per_page": per_page}
                )
                assert response.status_code == 200
            elapsed = (time.perf_counter() - started) / runs
            self.stdout.write(f"GET /api/v1/payments per_page={per_page}: {elapsed * 1000:.1f} ms/request")

        started = time.perf_counter()
        flagged, cleared = services.invoices_overdue_refresh(today=today)
        first = time.perf_counter() - started
        started = time.perf_counter()
        services.invoices_overdue_refresh(today=today)
        again = time.perf_counter() - started
        self.stdout.write(
            f"overdue sweep over {invoice_count} invoices: flagged {flagged} in {first * 1000:.0f} ms, "
            f"nothing to change in {again * 1000:.0f} ms ({connection.vendor})"
        )
