"""Benchmark late usage: ingestion with and without the late-usage trigger, the lineage share of
a billing run, and re-rating N marked periods against billing them fresh.

    python manage.py bench_corrections [--subscriptions 1000] [--events-per-subscription 100]

Runs in a database of its own (`tollgate_bench_corrections`), created, migrated and dropped on
every run, with bench_invoicing's data (two charges, a count and a graduated sum). Figures and
ratios measured in the same run, never assertions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import timedelta
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError, CommandParser
from django.db.models import F, Func, Sum

from .bench_invoicing import PERIOD_END, PERIOD_START
from .bench_invoicing import Bench as InvoicingBench
from .bench_invoicing import Command as InvoicingCommand

TRIGGER = "invoicing_event_mark_late_usage"


class Command(InvoicingCommand):
    help = "Benchmark late usage: ingestion cost of the trigger, lineage, re-rating vs fresh billing."
    command_name = "bench_corrections"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--subscriptions", type=int, default=1_000)
        parser.add_argument("--events-per-subscription", type=int, default=100)
        parser.add_argument("--pdfs", type=int, default=0, help=argparse.SUPPRESS)
        parser.add_argument("--server", default="")
        parser.add_argument("--database-name", default="tollgate_bench_corrections")
        parser.add_argument("--keep-database", action="store_true")
        parser.add_argument("--profile", action="store_true")
        parser.add_argument("--inner", action="store_true", help="(internal) run inside the bench database")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["inner"]:
            CorrectionsBench(self, options).run()
        else:
            self._outer(options)  # bench_invoicing's: a database of its own, this command inside


class CorrectionsBench(InvoicingBench):
    def run(self) -> None:
        from customers.models import Organization
        from invoicing import runs
        from invoicing import tasks as invoicing_tasks
        from invoicing.corrections.models import FeeEventSet, LateUsageMark
        from invoicing.corrections.recording import invoice_lineage_write
        from invoicing.corrections.rerate import late_usage_rerate
        from invoicing.models import Invoice, InvoiceStatus, InvoiceType
        from invoicing.signals import invoice_finalized

        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        self._setup()
        Organization.objects.filter(pk=Organization.current().pk).update(late_usage_policy="correct")
        self.say(
            f"setup: {self.n:,} subscriptions, {self.n * self.per:,} events ({time.perf_counter() - started:.1f} s)"
        )
        invoice_finalized.disconnect(dispatch_uid="payments.on_invoice_finalized")
        invoicing_tasks.render_invoice_pdf.delay = lambda *a, **k: None  # PDFs are bench_invoicing's

        began = time.perf_counter()
        summary = runs.bill_due(at=PERIOD_END + timedelta(minutes=10), actor="command:bench_corrections")
        fresh = time.perf_counter() - began
        if summary.failed or summary.created != self.n:
            raise CommandError(f"billing run: {summary.as_dict()} {summary.errors[:3]}")
        lineage_sets = FeeEventSet.objects.count()
        lineage_events = FeeEventSet.objects.aggregate(n=Sum(Func(F("event_ids"), function="cardinality")))["n"] or 0
        self.say(
            f"fresh billing: {self.n:,} periods in {fresh:.2f} s = {fresh / self.n * 1000:.2f} ms per period "
            f"(lineage included: {lineage_events:,} events in {lineage_sets:,} fee sets)"
        )
        # The lineage's share: written again for every invoice as the run writes it (its one
        # statement, from the fees in memory), the fees loaded beforehand.
        from invoicing.corrections.recording import _period_fees

        fees_by_invoice = {
            invoice_id: _period_fees(invoice_id) for invoice_id in Invoice.objects.values_list("pk", flat=True)
        }
        FeeEventSet.objects.all().delete()
        began = time.perf_counter()
        for invoice_id, fees in fees_by_invoice.items():
            invoice_lineage_write(invoice_id=invoice_id, fees=fees)
        lineage = time.perf_counter() - began
        self.say(
            f"lineage alone: {lineage:.2f} s = {lineage / self.n * 1000:.2f} ms per invoice (one statement each) "
            f"= {lineage / fresh:.0%} of the billing run"
        )

        with_trigger, without_trigger = self._ingestion()
        ratio = statistics.median(with_trigger) / statistics.median(without_trigger)
        rate_on, rate_off = 100 / statistics.median(with_trigger), 100 / statistics.median(without_trigger)
        self.say(
            f"ingestion, 100-event batches of current usage: {statistics.median(with_trigger) * 1000:.2f} ms with the "
            f"late-usage trigger, {statistics.median(without_trigger) * 1000:.2f} ms without = {ratio:.3f}x "
            f"({rate_on:,.0f} vs {rate_off:,.0f} events/s; goal: within 5%, "
            f"{'met' if ratio <= 1.05 else 'NOT met'})"
        )
        # The trigger's own cost, without the Python around ingestion (its noise hides a small cost):
        # the same 100-row INSERT of current usage straight in SQL, trigger on and off alternated.
        sql_on, sql_off = self._insert_statements()
        share = (sql_on - sql_off) / statistics.median(without_trigger)
        self.say(
            f"the INSERT alone, 100 rows in SQL: {sql_on * 1000:.3f} ms with the trigger, {sql_off * 1000:.3f} ms "
            f"without = {sql_on / sql_off:.3f}x; the trigger's {(sql_on - sql_off) * 1000:+.3f} ms is "
            f"{share:+.2%} of an ingestion batch"
        )
        self.say(
            json.dumps(
                {
                    "sql_insert_ratio_detection_on_off": round(sql_on / sql_off, 3),
                    "detection_share_of_ingest_batch": round(share, 4),
                    "ingest_events_per_second_detection_on": round(rate_on),
                    "ingest_events_per_second_detection_off": round(rate_off),
                    "ingest_detection_cost_ratio": round(ratio, 3),
                    "rounds": len(with_trigger),
                }
            )
        )
        late_batch = self._late_events()
        marks = LateUsageMark.objects.count()
        self.say(f"late batches: {late_batch * 1000:.2f} ms per 100-event batch, {marks:,} subscriptions marked")

        began = time.perf_counter()
        rerated = late_usage_rerate(at=PERIOD_END + timedelta(hours=2), actor="command:bench_corrections")
        rerate = time.perf_counter() - began
        corrections = Invoice.objects.filter(invoice_type=InvoiceType.CORRECTION, status=InvoiceStatus.FINALIZED)
        if rerated.failed or corrections.count() != marks:
            raise CommandError(f"re-rating: {rerated.as_dict()}, {corrections.count()} corrections for {marks} marks")
        self.say(
            f"re-rating: {marks:,} marked periods in {rerate:.2f} s = {rerate / marks * 1000:.2f} ms per period "
            f"({rerated.corrections:,} corrections finalized)"
        )
        self.say(f"ratio: re-rating / fresh billing, per period = {(rerate / marks) / (fresh / self.n):.2f}x")
        began = time.perf_counter()
        again = late_usage_rerate(at=PERIOD_END + timedelta(hours=2), actor="command:bench_corrections")
        self.say(f"rerun: {again.as_dict()} in {time.perf_counter() - began:.3f} s")
        self.say(
            json.dumps(
                {
                    "periods": self.n,
                    "fresh_ms_per_period": round(fresh / self.n * 1000, 2),
                    "lineage_share_of_run": round(lineage / fresh, 3),
                    "ingest_trigger_ratio": round(ratio, 3),
                    "ingest_events_per_second_detection_on": round(rate_on),
                    "ingest_events_per_second_detection_off": round(rate_off),
                    "rerate_ms_per_period": round(rerate / marks * 1000, 2),
                    "rerate_to_fresh_ratio": round((rerate / marks) / (fresh / self.n), 2),
                }
            )
        )

    def _ingestion(self, rounds: int = 9, batches: int = 30) -> tuple[list[float], list[float]]:
        """Batches of February events (not late) for the billed subscriptions through the ingestion
        service, alternating the trigger (all the detection work) on and off, in ABBA order so
        neither side always runs first; per-batch time of each round (medians compared)."""
        from django.db import connection
        from django.utils import timezone

        from metrics import ingestion

        with_trigger: list[float] = []
        without: list[float] = []
        sequence = 0
        for round_number in range(rounds):
            for enabled in (True, False) if round_number % 2 == 0 else (False, True):
                with connection.cursor() as cursor:
                    cursor.execute(f"ALTER TABLE metrics_event {'ENABLE' if enabled else 'DISABLE'} TRIGGER {TRIGGER}")
                began = time.perf_counter()
                for _ in range(batches):
                    events = []
                    for _ in range(100):
                        sequence += 1
                        events.append(
                            {
                                "transaction_id": f"live_{sequence}",
                                "external_subscription_id": f"bench_sub_{sequence % self.n}",
                                "code": "bench_calls",
                                "timestamp": int((PERIOD_END + timedelta(hours=1, seconds=sequence)).timestamp()),
                            }
                        )
                    ingestion.events_ingest_batch(events=events, received_at=timezone.now())
                (with_trigger if enabled else without).append((time.perf_counter() - began) / batches)
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE metrics_event ENABLE TRIGGER {TRIGGER}")
        return with_trigger, without

    def _insert_statements(self, rounds: int = 15, statements: int = 40) -> tuple[float, float]:
        """Median time of one 100-row INSERT ... ON CONFLICT DO NOTHING of current usage into the
        events table, trigger on and off in alternated rounds (the median of the rounds' medians)."""
        from django.db import connection

        sql = (
            "INSERT INTO metrics_event (transaction_id, external_subscription_id, code, timestamp, properties) "
            "SELECT 'sql_' || %s || '_' || g, 'bench_sub_' || (g %% 1000), 'bench_calls', "
            "%s::timestamptz + g * interval '1 second', '{}'::jsonb FROM generate_series(1, 100) g "
            "ON CONFLICT DO NOTHING"
        )
        after = PERIOD_END + timedelta(days=2)
        timings: dict[bool, list[float]] = {True: [], False: []}
        number = 0
        with connection.cursor() as cursor:
            for round_number in range(rounds):
                for enabled in (True, False) if round_number % 2 == 0 else (False, True):
                    cursor.execute(f"ALTER TABLE metrics_event {'ENABLE' if enabled else 'DISABLE'} TRIGGER {TRIGGER}")
                    each = []
                    for _ in range(statements):
                        number += 1
                        began = time.perf_counter()
                        cursor.execute(sql, [number, after])
                        each.append(time.perf_counter() - began)
                    timings[enabled].append(statistics.median(each))
            cursor.execute(f"ALTER TABLE metrics_event ENABLE TRIGGER {TRIGGER}")
        return statistics.median(timings[True]), statistics.median(timings[False])

    def _late_events(self) -> float:
        """One late January event per subscription (2 GB of storage on the 20th), 100 a batch."""
        from django.utils import timezone

        from metrics import ingestion

        began = time.perf_counter()
        for start in range(0, self.n, 100):
            ingestion.events_ingest_batch(
                events=[
                    {
                        "transaction_id": f"late_{i}",
                        "external_subscription_id": f"bench_sub_{i}",
                        "code": "bench_gb",
                        "timestamp": int((PERIOD_START + timedelta(days=19)).timestamp()),
                        "properties": {"gb": 2},
                    }
                    for i in range(start, min(start + 100, self.n))
                ],
                received_at=timezone.now(),
            )
        return (time.perf_counter() - began) / max(1, (self.n + 99) // 100)
