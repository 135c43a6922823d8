"""Benchmark the billing run's Celery fan-out across worker processes: N subscriptions billed by
real celery workers (prefork, --concurrency 1 then 2) against Redis, invoices/s and the ratio.

    python manage.py bench_billing_workers [--subscriptions 10000] [--concurrency 1,2]

Runs in a database of its own (`<DATABASE_URL's name>_bench_workers`), set up as bench_invoicing
sets up its run (N monthly subscriptions, two charges, 100 events each, folded into the usage
rollups first as the hourly task folds them). The broker is REDIS_URL (or --broker); its database
is flushed before each round, so give the bench one of its own (skipped without one). Per round: the invoicing rows are
emptied, a worker with --concurrency C is started, invoicing.tasks.bill_due_subscriptions
publishes one task per batch of 50 subscriptions (tasks.FANOUT_BATCH, each billed in one
transaction: runs.BATCH), and the clock stops when the last invoice is committed.
The workers share nothing but PostgreSQL and Redis (no process-local state, row locks only):
the same run on many hosts is many such workers. Figures, not assertions: compare within a run.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from .bench_invoicing import PERIOD_END
from .bench_invoicing import Bench as InvoicingBench

_AT = PERIOD_END + timedelta(minutes=10)
_TABLES = (
    "invoicing_invoice, invoicing_invoicesubscription, invoicing_fee, invoicing_invoiceevent, "
    "invoicing_feeappliedtax, invoicing_invoiceappliedtax, sequences_sequence"
)


class Command(BaseCommand):
    help = "Benchmark the Celery fan-out of a billing run with 1 and 2 worker processes (invoices/s, ratio)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--subscriptions", type=int, default=10_000)
        parser.add_argument("--events-per-subscription", type=int, default=100)
        parser.add_argument("--concurrency", default="1,2", help="worker processes per round, comma-separated")
        parser.add_argument("--broker", default="", help="Redis URL, flushed between rounds (default: REDIS_URL)")
        parser.add_argument("--server", default="", help="PostgreSQL server URL (default: DATABASE_URL's)")
        parser.add_argument("--database-name", default="")
        parser.add_argument("--keep-database", action="store_true")
        parser.add_argument("--inner", action="store_true", help="(internal) run inside the bench database")
        parser.add_argument("--worker", type=int, default=0, help="(internal) be a worker with this concurrency")

    def say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def handle(self, *args: Any, **options: Any) -> None:
        if options["worker"]:
            self._worker(options["worker"])
        elif options["inner"]:
            self._inner(options)
        else:
            self._outer(options)

    def _outer(self, options: dict[str, Any]) -> None:
        import psycopg

        server = options["server"] or os.environ.get("DATABASE_URL", "")
        if not server.startswith(("postgres://", "postgresql://")):
            server = "postgres://postgres@127.0.0.1:5432/postgres"
        parts = urlsplit(server)
        name = options["database_name"] or f"{parts.path.strip('/') or 'tollgate'}_bench_workers"
        admin_url = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        # The broker's database is flushed between rounds: only one named for this bench.
        broker = options["broker"] or os.environ.get("REDIS_URL", "")
        if not broker:
            self.say("bench_billing_workers skipped: set REDIS_URL (or --broker) to a Redis database of its own")
            return
        env = {
            **os.environ,
            "DATABASE_URL": urlunsplit(parts._replace(path=f"/{name}")),
            "DEBUG": "0",
            "SECURE_SSL_REDIRECT": "0",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "LOG_LEVEL": "WARNING",
            "CELERY_BROKER_URL": broker,
            "MEDIA_ROOT": str(Path(settings.BASE_DIR) / ".bench_media"),
        }
        argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "bench_billing_workers", "--inner"]
        for option in ("subscriptions", "events_per_subscription", "concurrency"):
            argv += [f"--{option.replace('_', '-')}", str(options[option])]
        try:
            completed = subprocess.run(argv, env=env, check=False)
        finally:
            if not options["keep_database"]:
                with psycopg.connect(admin_url, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            subprocess.run(["rm", "-rf", env["MEDIA_ROOT"]], check=False)
        if completed.returncode:
            raise CommandError(f"benchmark failed (exit {completed.returncode})")

    def _worker(self, concurrency: int) -> None:
        """A celery worker as `celery worker` starts one, minus what other benchmarks measure:
        payments (no provider here) and PDF rendering (bench_invoicing measures it)."""
        from billing_project.celery import app
        from invoicing import tasks
        from invoicing.signals import invoice_finalized

        invoice_finalized.disconnect(dispatch_uid="payments.on_invoice_finalized")
        tasks.render_invoice_pdf.delay = lambda *args, **kwargs: None
        app.worker_main(
            [
                "worker",
                "--concurrency",
                str(concurrency),
                "--pool",
                "prefork",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"bench{concurrency}@%h",
            ]
        )

    def _inner(self, options: dict[str, Any]) -> None:
        from django.core.management import call_command
        from django.db import connection

        from invoicing import tasks
        from invoicing.models import Invoice
        from metrics.rollups import usage_rollups_caught_up, usage_rollups_fold

        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        setup = InvoicingBench(self, {**options, "pdfs": 0, "profile": False})
        setup._setup()
        for _ in range(100):  # folded as the periodic task would have folded January
            usage_rollups_fold(now=_AT)
            if usage_rollups_caught_up(now=_AT):
                break
        n = options["subscriptions"]
        self.say(
            f"setup: {n:,} subscriptions, {n * options['events_per_subscription']:,} events, folded "
            f"({time.perf_counter() - started:.1f} s, {os.cpu_count()} cores)"
        )
        import redis

        broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        rates: dict[int, float] = {}
        argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "bench_billing_workers"]
        for concurrency in [int(c) for c in str(options["concurrency"]).split(",") if c.strip()]:
            with connection.cursor() as cursor:
                cursor.execute(f"TRUNCATE {_TABLES} CASCADE")
                cursor.execute("UPDATE customers_customer SET sequential_id = NULL")
            broker.flushdb()
            worker = subprocess.Popen([*argv, "--worker", str(concurrency)], start_new_session=True)
            try:
                time.sleep(3)  # the worker connects before the fan-out is timed
                load_before = os.getloadavg()[0]
                began = time.perf_counter()
                fanned = tasks.bill_due_subscriptions(_AT.isoformat())
                published = time.perf_counter() - began
                done = 0
                while done < n:
                    if worker.poll() is not None:
                        raise CommandError(f"the worker exited ({worker.returncode})")
                    time.sleep(0.5)
                    done = Invoice.objects.count()
                elapsed = time.perf_counter() - began
            finally:
                worker.send_signal(signal.SIGTERM)  # warm shutdown: the main process stops its children
                try:
                    worker.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
            rates[concurrency] = n / elapsed
            self.say(
                f"--concurrency {concurrency}: {n:,} invoices in {elapsed:.1f} s = "
                f"{rates[concurrency]:,.1f} invoices/s "
                f"({fanned['tasks']:,} tasks of up to {tasks.FANOUT_BATCH} subscriptions published "
                f"in {published:.1f} s; "
                f"load average {load_before:.1f} "
                f"-> {os.getloadavg()[0]:.1f})"
            )
        counts = sorted(rates)
        ratio = rates[counts[-1]] / rates[counts[0]] if len(counts) > 1 else 1.0
        self.say(f"ratio: {counts[-1]} workers / {counts[0]} = {ratio:.2f}x")
        self.say(
            json.dumps(
                {
                    "subscriptions": n,
                    "invoices_per_second": {str(c): round(r, 1) for c, r in rates.items()},
                    "ratio": round(ratio, 2),
                    "cores": os.cpu_count(),
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                }
            )
        )
