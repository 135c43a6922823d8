"""Benchmark the billing run: N monthly subscriptions x two usage charges x 100 events each,
billed at the period end in one inline run (finalized, numbered), against the plain SQL
aggregation of the same events; then PDF rendering separately.

    python manage.py bench_invoicing [--subscriptions 10000] [--events-per-subscription 100] [--pdfs 200]

Runs in a database of its own (`tollgate_bench_invoicing` on DATABASE_URL's server), created,
migrated and dropped on every run (--keep-database keeps it). --reuse-database keeps the set-up,
folded and analyzed data as a template database (`<name>_template_<subscriptions>x<events>`,
made by the first such run of those sizes) and copies it for each run: an iteration costs the
run, not the setup. Drop the template after changing the setup (it is never rebuilt by itself;
the copy is migrated, so new migrations apply). Reports invoices/s without PDFs, queries per
invoice, PDFs/s with the real renderer, and ratios against the baseline measured in the same
run. Figures, not assertions: compare within a run.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

PERIOD_START = datetime(2026, 1, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 2, 1, tzinfo=UTC)


class Command(BaseCommand):
    help = "Benchmark a period-end billing run (invoices/s, queries per invoice, PDFs/s) against plain SQL."
    # The command the outer run starts inside the bench database (bench_corrections reuses it).
    command_name = "bench_invoicing"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--subscriptions", type=int, default=10_000)
        parser.add_argument("--events-per-subscription", type=int, default=100)
        parser.add_argument("--pdfs", type=int, default=200, help="invoices rendered to PDF (0: skip)")
        parser.add_argument("--server", default="", help="PostgreSQL server URL (default: DATABASE_URL's)")
        parser.add_argument("--database-name", default="", help="default: <DATABASE_URL's name>_bench_invoicing")
        parser.add_argument("--keep-database", action="store_true")
        parser.add_argument(
            "--reuse-database",
            action="store_true",
            help="copy the set-up data from <name>_template (made on first use) instead of setting up",
        )
        parser.add_argument("--profile", action="store_true", help="print the billing run's top functions (cProfile)")
        parser.add_argument("--inner", action="store_true", help="(internal) run inside the bench database")
        parser.add_argument("--phase", choices=["all", "setup", "run"], default="all", help="(internal)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["inner"]:
            Bench(self, options).run()
        else:
            self._outer(options)

    def _outer(self, options: dict[str, Any]) -> None:
        import psycopg

        server = options["server"] or os.environ.get("DATABASE_URL", "")
        if not server.startswith(("postgres://", "postgresql://")):
            server = "postgres://postgres@127.0.0.1:5432/postgres"
        parts = urlsplit(server)
        admin_url = urlunsplit(parts._replace(path="/postgres"))
        # Named after the developer's own database: benchmarks of several checkouts never share one.
        name = options["database_name"] or f"{parts.path.strip('/') or 'tollgate'}_bench_invoicing"
        bench_url = urlunsplit(parts._replace(path=f"/{name}"))
        try:
            admin = psycopg.connect(admin_url, autocommit=True)
        except psycopg.OperationalError as error:
            raise CommandError(f"bench_invoicing needs PostgreSQL ({admin_url}): {error}") from error
        # The template is named after the sizes it holds: a run of other sizes makes its own.
        template = f"{name}_template_{options['subscriptions']}x{options['events_per_subscription']}"
        with admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template]).fetchone()
            reuse = bool(options.get("reuse_database")) and exists is not None
            admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if reuse else ""))
        env = {
            **os.environ,
            "DATABASE_URL": bench_url,
            "DEBUG": "0",
            # Production settings, but served over plain http on loopback: no https redirect.
            "SECURE_SSL_REDIRECT": "0",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "LOG_LEVEL": "WARNING",
            "CELERY_BROKER_URL": "",
            "MEDIA_ROOT": str(Path(settings.BASE_DIR) / ".bench_media"),
        }
        argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), self.command_name, "--inner"]
        for option in ("subscriptions", "events_per_subscription", "pdfs"):
            argv += [f"--{option.replace('_', '-')}", str(options[option])]
        if options["profile"]:
            argv.append("--profile")
        try:
            phase: list[str] = []
            if options.get("reuse_database") and not reuse:
                completed = subprocess.run([*argv, "--phase", "setup"], env=env, check=False)
                if completed.returncode:
                    raise CommandError(f"benchmark setup failed (exit {completed.returncode})")
                with psycopg.connect(admin_url, autocommit=True) as admin:
                    admin.execute(f'CREATE DATABASE "{template}" TEMPLATE "{name}"')
                reuse = True
            if reuse:
                phase = ["--phase", "run"]
            completed = subprocess.run([*argv, *phase], env=env, check=False)
        finally:
            if not options["keep_database"]:
                with psycopg.connect(admin_url, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            subprocess.run(["rm", "-rf", env["MEDIA_ROOT"]], check=False)
        if completed.returncode:
            raise CommandError(f"benchmark failed (exit {completed.returncode})")


class _QueryCounter:
    """Counts the statements a block runs, by kind (verb and first table), for the breakdown."""

    def __init__(self) -> None:
        self.count = 0
        self.kinds: dict[str, int] = {}

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        kind = _kind(sql)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        return execute(sql, params, many, context)


def _kind(sql: str) -> str:
    import re

    text = " ".join(sql.split())
    verb = text.split(" ", 1)[0].upper()
    if verb == "WITH":
        verb = "WITH"
    table = re.search(r'(?:FROM|INTO|UPDATE|JOIN)\s+"?([a-z_]+)"?', text, re.IGNORECASE)
    suffix = " FOR UPDATE" if "FOR UPDATE" in text.upper() else ""
    return f"{verb} {table.group(1) if table else '?'}{suffix}"


class Bench:
    def __init__(self, command: BaseCommand, options: dict[str, Any]) -> None:
        self.out = command.stdout
        self.n = options["subscriptions"]
        self.per = options["events_per_subscription"]
        self.pdfs = options["pdfs"]
        self.profile = options["profile"]
        self.phase = options.get("phase", "all")

    def say(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def run(self) -> None:
        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        if self.phase == "run":
            # Copied from the template: set up, folded and analyzed by an earlier run.
            from metrics.models import UsageRollup

            fold_seconds, buckets = float("nan"), UsageRollup.objects.count()
            self.say(f"setup: copied from the template ({buckets:,} hour buckets folded)")
        else:
            self._setup()
            self.say(
                f"setup: {self.n:,} subscriptions, {self.n * self.per:,} events, two charges each "
                f"({time.perf_counter() - started:.1f} s, {os.cpu_count()} cores)"
            )
            fold_seconds, buckets = self._fold()
            self.say(
                f"fold: the month's events into {buckets:,} hour buckets in {fold_seconds:.1f} s "
                "(as the periodic task folds them): the run's aggregation reads the rollups"
            )
            if self.phase == "setup":
                return
        baseline = self._baseline()
        self.say(f"baseline: plain SQL GROUP BY (subscription, code) of the month: {baseline * 1000:.0f} ms")

        from django.db import connection

        from invoicing import runs
        from invoicing import tasks as invoicing_tasks
        from invoicing.models import Invoice, InvoiceStatus
        from invoicing.signals import invoice_finalized

        # Payments is another app's benchmark; PDFs are measured apart.
        invoice_finalized.disconnect(dispatch_uid="payments.on_invoice_finalized")
        rendered_later: list[str] = []
        invoicing_tasks.render_invoice_pdf.delay = rendered_later.append

        counter = _QueryCounter()
        profiler = None
        if self.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        began = time.perf_counter()
        with connection.execute_wrapper(counter):
            summary = runs.bill_due(at=PERIOD_END + timedelta(minutes=10), actor="command:bench_invoicing")
        elapsed = time.perf_counter() - began
        if profiler is not None:
            import pstats

            profiler.disable()
            pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(45)
        finalized = Invoice.objects.filter(status=InvoiceStatus.FINALIZED).count()
        if summary.failed or finalized != self.n:
            raise CommandError(f"run: {summary.as_dict()}, {finalized} finalized; {summary.errors[:3]}")
        rate = summary.created / elapsed
        per_invoice = counter.count / max(summary.created, 1)
        self.say(
            f"billing run: {summary.created:,} invoices finalized in {elapsed:.1f} s = {rate:,.0f} invoices/s "
            f"(without PDFs); {per_invoice:.1f} queries per invoice ({counter.count:,} in all)"
        )
        self.say(f"ratio: billing run / plain SQL aggregation of the same events = {elapsed / baseline:.1f}x")
        breakdown = sorted(counter.kinds.items(), key=lambda item: -item[1])
        self.say(
            "queries per invoice, by kind: "
            + ", ".join(
                f"{kind} {n / max(summary.created, 1):.2f}" for kind, n in breakdown if n >= summary.created / 20
            )
        )

        counter2 = _QueryCounter()
        began = time.perf_counter()
        with connection.execute_wrapper(counter2):
            again = runs.bill_due(at=PERIOD_END + timedelta(minutes=10), actor="command:bench_invoicing")
        rerun = time.perf_counter() - began
        self.say(f"rerun of the same instant: {again.as_dict()} in {rerun:.2f} s, {counter2.count} queries")

        pdf_rate = None
        if self.pdfs:
            pdf_rate = self._pdfs(rendered_later[: self.pdfs])
        self.say(
            json.dumps(
                {
                    "subscriptions": self.n,
                    "events": self.n * self.per,
                    "invoices_per_second": round(rate, 1),
                    "queries_per_invoice": round(per_invoice, 2),
                    "baseline_sql_seconds": round(baseline, 3),
                    "run_seconds": round(elapsed, 2),
                    "run_to_baseline_ratio": round(elapsed / baseline, 1),
                    "pdfs_per_second": pdf_rate,
                    "fold_seconds": None if fold_seconds != fold_seconds else round(fold_seconds, 2),
                    "buckets": buckets,
                    "queries_per_invoice_by_kind": {
                        kind: round(n / max(summary.created, 1), 2)
                        for kind, n in breakdown
                        if n >= summary.created / 20
                    },
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                }
            )
        )

    def _setup(self) -> None:
        from django.db import connection

        from customers.models import Customer, Organization
        from metrics.models import BillableMetric
        from plans import services as plan_services
        from plans.models import Subscription, SubscriptionStatus

        Organization.current()
        calls = BillableMetric.objects.create(name="Calls", code="bench_calls", aggregation_type="count_agg")
        BillableMetric.objects.create(name="Storage", code="bench_gb", aggregation_type="sum_agg", field_name="gb")
        plan = plan_services.plan_create(
            name="Bench",
            code="bench",
            interval="monthly",
            amount_cents=4900,
            amount_currency="USD",
            charges=[
                {"billable_metric_id": str(calls.pk), "charge_model": "standard", "properties": {"amount": "0.01"}},
                {
                    "billable_metric_id": str(BillableMetric.objects.get(code="bench_gb").pk),
                    "charge_model": "graduated",
                    "properties": {
                        "graduated_ranges": [
                            {"from_value": 0, "to_value": 100, "per_unit_amount": "0.5", "flat_amount": "0"},
                            {"from_value": 101, "to_value": None, "per_unit_amount": "0.25", "flat_amount": "1"},
                        ]
                    },
                },
            ],
        )
        customers = Customer.objects.bulk_create(
            Customer(external_id=f"bench_cust_{i}", name=f"Bench {i}", currency="USD") for i in range(self.n)
        )
        Subscription.objects.bulk_create(
            Subscription(
                external_id=f"bench_sub_{i}",
                customer=customer,
                plan=plan,
                status=SubscriptionStatus.ACTIVE,
                subscription_at=PERIOD_START,
                started_at=PERIOD_START,
                recorded_at=PERIOD_START,  # known since its start: its January is billable
            )
            for i, customer in enumerate(customers)
        )
        half = self.per // 2
        seconds = int((PERIOD_END - PERIOD_START).total_seconds())
        buffer = io.StringIO()
        for i in range(self.n):
            for j in range(self.per):
                code, props = ("bench_calls", "{}") if j < half else ("bench_gb", f'{{"gb": {j % 7}}}')
                at = PERIOD_START + timedelta(seconds=(i * 7919 + j * 26_777) % seconds)
                # Stored when it happened (as live ingestion stores it): settled for the fold's
                # discovery, which leaves events of the last minute to its next pass.
                buffer.write(f"bench_{i}_{j}\tbench_sub_{i}\t{code}\t{at.isoformat()}\t{at.isoformat()}\t{props}\n")
        raw = connection.connection  # psycopg connection
        with raw.cursor() as cursor:
            with cursor.copy(
                "COPY metrics_event (transaction_id, external_subscription_id, code, timestamp, created_at, "
                "properties) FROM STDIN"
            ) as copy:
                copy.write(buffer.getvalue())
        raw.commit() if not raw.autocommit else None
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE metrics_event")

    def _fold(self) -> tuple[float, int]:
        from billing_project.benchmarks import analyze_filled_tables
        from metrics.models import UsageRollup
        from metrics.rollups import usage_rollups_caught_up, usage_rollups_fold

        at = PERIOD_END + timedelta(minutes=10)
        began = time.perf_counter()
        for _ in range(100):
            usage_rollups_fold(now=at)
            if usage_rollups_caught_up(now=at):
                break
        elapsed = time.perf_counter() - began
        # Statistics for the tables holding rows only (billing_project.benchmarks says why).
        analyze_filled_tables()
        return elapsed, UsageRollup.objects.count()

    def _baseline(self) -> float:
        from django.db import connection

        timings = []
        for _ in range(3):
            began = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT external_subscription_id, code, count(*), sum((properties ->> 'gb')::numeric) "
                    "FROM metrics_event WHERE timestamp >= %s AND timestamp < %s GROUP BY 1, 2",
                    [PERIOD_START, PERIOD_END],
                )
                cursor.fetchall()
            timings.append(time.perf_counter() - began)
        return sorted(timings)[1]

    def _pdfs(self, invoice_ids: list[str]) -> float | None:
        from invoicing import pdf
        from invoicing.models import Invoice

        if not invoice_ids:
            return None
        invoices = list(Invoice.objects.filter(pk__in=invoice_ids).select_related("customer"))
        began = time.perf_counter()
        for invoice in invoices:
            pdf.invoice_pdf_render(invoice=invoice)
        elapsed = time.perf_counter() - began
        rate = len(invoices) / elapsed
        self.say(f"PDFs: {len(invoices)} rendered with xhtml2pdf in {elapsed:.1f} s = {rate:.1f} PDFs/s")
        return round(rate, 1)
