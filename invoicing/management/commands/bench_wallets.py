"""Benchmark what prepaid credits cost the billing run: N customers, one monthly subscription each
(a 20.00 plan, one usage charge, a 20% tax), billed for January without wallets, then for February
with one wallet each that pays part of every invoice. Reports queries per invoice of both runs and
their difference (the wallets' cost), and invoices/s.

    python manage.py bench_wallets [--customers 500]

Runs in a database of its own (`tollgate_bench_wallets` on DATABASE_URL's server), created,
migrated and dropped on every run. Figures, not assertions: compare within a run. Work after
commit (payments, PDFs, the ongoing balance refresh) is another task's and is not counted.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

START = datetime(2026, 1, 1, tzinfo=UTC)
FEBRUARY = datetime(2026, 2, 1, tzinfo=UTC)
MARCH = datetime(2026, 3, 1, tzinfo=UTC)


class Command(BaseCommand):
    help = "Benchmark the queries prepaid credits add to a billing run (with and without one wallet)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=500)
        parser.add_argument("--server", default="", help="PostgreSQL server URL (default: DATABASE_URL's)")
        parser.add_argument("--database-name", default="tollgate_bench_wallets")
        parser.add_argument("--inner", action="store_true", help="(internal) run inside the bench database")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["inner"]:
            self._inner(options["customers"])
            return
        import psycopg

        server = options["server"] or os.environ.get("DATABASE_URL", "")
        if not server.startswith(("postgres://", "postgresql://")):
            server = "postgres://postgres@127.0.0.1:5432/postgres"
        parts = urlsplit(server)
        admin_url = urlunsplit(parts._replace(path="/postgres"))
        name = options["database_name"]
        try:
            admin = psycopg.connect(admin_url, autocommit=True)
        except psycopg.OperationalError as error:
            raise CommandError(f"bench_wallets needs PostgreSQL ({admin_url}): {error}") from error
        with admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        env = {
            **os.environ,
            "DATABASE_URL": urlunsplit(parts._replace(path=f"/{name}")),
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "LOG_LEVEL": "WARNING",
            "CELERY_BROKER_URL": "",
        }
        argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "bench_wallets", "--inner"]
        argv += ["--customers", str(options["customers"])]
        try:
            completed = subprocess.run(argv, env=env, check=False)
        finally:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if completed.returncode:
            raise CommandError(f"benchmark failed (exit {completed.returncode})")

    def _inner(self, n: int) -> None:
        from django.db import connection

        from customers.models import Customer, Organization
        from invoicing import runs
        from invoicing import tasks as invoicing_tasks
        from invoicing.signals import invoice_finalized
        from invoicing.wallets import services as wallet_services
        from invoicing.wallets import tasks as wallet_tasks
        from metrics.models import BillableMetric, Event
        from plans import services as plan_services

        call_command("migrate", verbosity=0)
        Organization.current()
        plan_services.tax_create(code="vat_20", name="VAT", rate=Decimal(20), applied_to_organization=True)
        bm = BillableMetric.objects.create(name="Calls", code="calls", aggregation_type="count_agg")
        plan = plan_services.plan_create(
            code="bench",
            name="Bench",
            interval="monthly",
            amount_cents=2000,
            amount_currency="USD",
            charges=[{"billable_metric_id": str(bm.pk), "charge_model": "standard", "properties": {"amount": "1"}}],
        )
        customers = Customer.objects.bulk_create(
            [Customer(external_id=f"c{i}", name=f"C{i}", currency="USD") for i in range(n)]
        )
        for customer in customers:
            plan_services.subscription_create(
                customer=customer, plan=plan, external_id=f"s_{customer.external_id}", subscription_at=START, now=START
            )
        events = []
        for customer in customers:
            for month in (START, FEBRUARY):
                for k in range(3):
                    events.append(
                        Event(
                            transaction_id=f"{customer.external_id}-{month:%m}-{k}",
                            external_subscription_id=f"s_{customer.external_id}",
                            code="calls",
                            timestamp=month + timedelta(days=3, minutes=k),
                            properties={},
                        )
                    )
        Event.objects.bulk_create(events, batch_size=5000)

        invoice_finalized.disconnect(dispatch_uid="payments.on_invoice_finalized")
        invoicing_tasks.render_invoice_pdf.delay = lambda *a, **k: None
        wallet_tasks.refresh_ongoing_balances.delay = lambda *a, **k: None

        def run(at: datetime) -> tuple[float, float, int]:
            count = [0]

            def counter(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
                count[0] += 1
                return execute(sql, params, many, context)

            began = time.perf_counter()
            with connection.execute_wrapper(counter):
                summary = runs.bill_due(at=at + timedelta(minutes=10), actor="command:bench_wallets")
            elapsed = time.perf_counter() - began
            if summary.failed or summary.created != n:
                raise CommandError(f"run at {at}: {summary.as_dict()} {summary.errors[:3]}")
            return count[0] / n, n / elapsed, count[0]

        without, rate_without, total_without = run(FEBRUARY)
        for customer in customers:
            wallet_services.wallet_create(customer=customer, rate_amount="1", granted_credits="10", actor="bench")
        with_wallet, rate_with, total_with = run(MARCH)
        from invoicing.models import Invoice

        applied = Invoice.objects.filter(prepaid_credit_amount__gt=0).count()
        self.stdout.write(
            f"without wallets: {without:.2f} queries per invoice ({total_without:,}), {rate_without:,.0f} invoices/s"
        )
        self.stdout.write(
            f"one wallet each: {with_wallet:.2f} queries per invoice ({total_with:,}), {rate_with:,.0f} invoices/s; "
            f"{applied:,} invoices paid in part by their wallet"
        )
        self.stdout.write(f"cost of one wallet: {with_wallet - without:+.2f} queries per invoice")
        self.stdout.write(
            json.dumps(
                {
                    "customers": n,
                    "queries_per_invoice_without_wallets": round(without, 2),
                    "queries_per_invoice_with_one_wallet": round(with_wallet, 2),
                    "wallet_queries_per_invoice": round(with_wallet - without, 2),
                    "invoices_per_second_without": round(rate_without, 1),
                    "invoices_per_second_with": round(rate_with, 1),
                }
            )
        )
