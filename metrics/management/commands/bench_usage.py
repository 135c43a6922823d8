"""Benchmark current usage at scale: one subscription with N events in its current period
(COPY-loaded, folded into the usage rollups as the periodic task folds them) plus M raw events
after the watermark, read through GET /customers/{id}/current_usage."""

#     python manage.py bench_usage [--events 1000000] [--raw-events 10000] [--requests 9]
#                                  [--database-name NAME] [--keep-database | --reuse-database]
#
# Runs in a database of its own (`<DATABASE_URL's name>_bench_usage` on DATABASE_URL's server),
# created, migrated and dropped on every run (--keep-database keeps it). --reuse-database keeps
# it too and, when it already holds this bench's data (the subscription, its folded watermark and
# exactly --events + --raw-events events), skips the setup (COPY, fold) and the ingestion
# measurement, and only migrates and times the reads: for iterating on the read path (minutes of
# setup become seconds). A database without the data is set up as usual; one with other data is
# refused. The reused data keeps its setup's watermark and period: the current period contains
# "now" for about 15 days after the setup. Reports the API's median time
# against an unguarded SQL SUM over the same rows measured in the same run, and checks that the
# answer equals the raw path's (the rollups switched off). The last line is JSON. Figures, not
# assertions: compare within a run.

from __future__ import annotations

import io
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

SUBSCRIPTION = "bench_usage_sub"
INGESTED = "bench_usage_ingested"  # the subscription of the ingestion overhead measurement
CUSTOMER = "bench_usage_customer"
CODE = "bench_usage_gb"
REGIONS = ("eu", "us", "ap")


class Command(BaseCommand):
    help = "Benchmark GET current_usage over 1M events read from the usage rollups, against a plain SQL SUM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--events", type=int, default=1_000_000, help="events below the watermark")
        parser.add_argument("--raw-events", type=int, default=10_000, help="events after the watermark")
        parser.add_argument("--requests", type=int, default=9, help="timed requests (after two warm-ups)")
        parser.add_argument("--server", default="", help="PostgreSQL server URL (default: DATABASE_URL's)")
        parser.add_argument("--database-name", default="", help="default: <DATABASE_URL's name>_bench_usage")
        parser.add_argument("--keep-database", action="store_true")
        parser.add_argument(
            "--reuse-database",
            action="store_true",
            help="keep the database; skip the setup when it already holds this bench's data",
        )
        parser.add_argument(
            "--profile",
            action="store_true",
            help="also print one request's statements with their times, its Python profile and the "
            "EXPLAIN (ANALYZE, BUFFERS) of its longest statement",
        )
        parser.add_argument("--inner", action="store_true", help="(internal) run inside the bench database")

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
        name = options["database_name"] or f"{parts.path.strip('/') or 'tollgate'}_bench_usage"
        bench_url = urlunsplit(parts._replace(path=f"/{name}"))
        try:
            admin = psycopg.connect(admin_url, autocommit=True)
        except psycopg.OperationalError as error:
            raise CommandError(f"bench_usage needs PostgreSQL ({admin_url}): {error}") from error
        with admin:
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not (options["reuse_database"] and exists):
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.execute(f'CREATE DATABASE "{name}"')
        env = {
            **os.environ,
            "DATABASE_URL": bench_url,
            "DEBUG": "0",
            # Production settings, but requests go to the test client over plain http: no https redirect.
            "SECURE_SSL_REDIRECT": "0",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "LOG_LEVEL": "WARNING",
            "CELERY_BROKER_URL": "",
        }
        argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "bench_usage", "--inner"]
        for option in ("events", "raw_events", "requests"):
            argv += [f"--{option.replace('_', '-')}", str(options[option])]
        for flag in ("reuse_database", "profile"):
            if options[flag]:
                argv.append(f"--{flag.replace('_', '-')}")
        try:
            completed = subprocess.run(argv, env=env, check=False)
        finally:
            if not (options["keep_database"] or options["reuse_database"]):
                with psycopg.connect(admin_url, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if completed.returncode:
            raise CommandError(f"benchmark failed (exit {completed.returncode})")


class Bench:
    def __init__(self, command: BaseCommand, options: dict[str, Any]) -> None:
        self.out = command.stdout
        self.events = options["events"]
        self.raw_events = options["raw_events"]
        self.requests = max(options["requests"], 7)
        self.reuse = options["reuse_database"]
        self.profile = options["profile"]
        self.fastest_ms = 0.0

    def say(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def run(self) -> None:
        from django.utils import timezone

        from metrics.rollups import floor_hour

        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        from metrics.models import UsageRollup, UsageWatermark

        reused = self.reuse and self._holds_bench_data()
        fold_seconds: float | None = None
        with_trigger: float | None = None
        without_trigger: float | None = None
        if reused:
            mark = UsageWatermark.objects.get(external_subscription_id=SUBSCRIPTION, code=CODE)
            assert mark.folded_until is not None  # _holds_bench_data checked it
            self.watermark = mark.folded_until
            self.api_key = self._new_api_key()
            self.period_start, self.period_end = self._period()
            self.say(
                f"reusing the bench database: {self.events:,} events folded until {self.watermark:%Y-%m-%d %H:%M}, "
                f"{self.raw_events:,} raw after it; period from {self.period_start:%Y-%m-%d %H:%M}"
            )
        else:
            self.now = timezone.now()
            self.grace = timedelta(minutes=5)
            self.watermark = floor_hour(self.now - self.grace)
            self.api_key = self._setup_catalog()
            self.period_start, self.period_end = self._period()
            self._copy(self.events, self.period_start, self.watermark, "r")
            self.say(
                f"setup: {self.events:,} events from {self.period_start:%Y-%m-%d %H:%M} to the watermark "
                f"{self.watermark:%Y-%m-%d %H:%M} ({time.perf_counter() - started:.1f} s, {os.cpu_count()} cores)"
            )
            fold_seconds = self._fold()
            self._copy(self.raw_events, self.watermark, self.now, "x")
            mark = UsageWatermark.objects.get(external_subscription_id=SUBSCRIPTION, code=CODE)
        buckets = UsageRollup.objects.filter(external_subscription_id=SUBSCRIPTION, code=CODE).count()
        if fold_seconds is not None:
            self.say(
                f"fold: {self.events:,} events into {buckets:,} buckets in {fold_seconds:.1f} s "
                f"({self.events / fold_seconds:,.0f} events/s); folded until {mark.folded_until:%Y-%m-%d %H:%M}; "
                f"{self.raw_events:,} raw events after it"
            )
            with_trigger, without_trigger = self._ingest_overhead()
            self.say(
                f"ingestion service (batches of 100, no HTTP), alternating: {with_trigger:,.0f} events/s with the "
                f"late-event trigger, {without_trigger:,.0f} without = {with_trigger / without_trigger:.3f}x"
            )
        plain = self._plain_sum()
        self.say(f"baseline: plain SQL SUM over the period's {self.events + self.raw_events:,} events: {plain:.1f} ms")
        rolled_ms, rolled_body = self._current_usage(self.requests)
        rolled_fastest_ms = self.fastest_ms
        self.say(f"current_usage through the API (rollups): median {rolled_ms:.1f} ms of {self.requests}")
        if self.profile:
            self._profile_request()
        from metrics import aggregation

        with mock.patch.object(aggregation, "rollup_aggregate", return_value=None):
            raw_ms, raw_body = self._current_usage(3)
        self.say(f"current_usage through the API (raw events, rollups off): median {raw_ms:.1f} ms of 3")
        read_ms, raw_read_ms = self._aggregation()
        self.say(
            f"the aggregation alone (metrics.aggregation.aggregate): {read_ms:.1f} ms from the rollups, "
            f"{raw_read_ms:.1f} ms from the raw events"
        )
        equal = rolled_body == raw_body
        usage = rolled_body["customer_usage"]["charges_usage"][0]
        self.say(
            f"answers equal: {equal} (units {usage['units']}, events_count {usage['events_count']}); "
            f"ratio current_usage / plain SUM = {rolled_ms / plain:.3f}x"
        )
        if not equal:
            self.say(json.dumps({"rollups": rolled_body, "raw": raw_body}, indent=1)[:4000])
        self.say(
            json.dumps(
                {
                    "events": self.events + self.raw_events,
                    "folded_events": self.events,
                    "raw_events_after_watermark": self.raw_events,
                    "buckets": buckets,
                    "reused_database": reused,
                    "fold_seconds": None if fold_seconds is None else round(fold_seconds, 2),
                    "current_usage_ms": round(rolled_ms, 2),
                    "current_usage_fastest_ms": round(rolled_fastest_ms, 2),
                    "plain_sum_ms": round(plain, 2),
                    "current_usage_to_plain_sum_ratio": round(rolled_ms / plain, 3),
                    "raw_path_current_usage_ms": round(raw_ms, 2),
                    "aggregation_ms": round(read_ms, 2),
                    "raw_aggregation_ms": round(raw_read_ms, 2),
                    "equal_to_raw_path": equal,
                    "ingest_events_per_second_with_trigger": None if with_trigger is None else round(with_trigger),
                    "ingest_events_per_second_without_trigger": (
                        None if without_trigger is None else round(without_trigger)
                    ),
                    "ingest_trigger_ratio": (
                        None if not (with_trigger and without_trigger) else round(with_trigger / without_trigger, 3)
                    ),
                }
            )
        )
        if not equal:
            raise CommandError("the rollup answer differs from the raw path's")

    def _holds_bench_data(self) -> bool:
        """Whether the database holds this bench's data, complete (a reusable database). Empty:
        False (set it up). Anything else: refused."""
        from metrics.models import Event, UsageWatermark
        from plans.models import Subscription

        if not Subscription.objects.filter(external_id=SUBSCRIPTION).exists():
            if Event.objects.exists():
                raise CommandError("the bench database holds other data: run without --reuse-database")
            return False
        mark = UsageWatermark.objects.filter(external_subscription_id=SUBSCRIPTION, code=CODE).first()
        events = Event.objects.filter(external_subscription_id=SUBSCRIPTION, code=CODE).count()
        if mark is None or mark.folded_until is None or events != self.events + self.raw_events:
            raise CommandError(
                f"the bench database holds an incomplete or different setup ({events:,} events): "
                "run without --reuse-database"
            )
        return True

    def _new_api_key(self) -> str:
        from customers.models import ApiKey, generate_api_key, hash_api_key

        raw_key = generate_api_key()
        ApiKey.objects.create(name="bench", display_prefix=raw_key[:10], key_hash=hash_api_key(raw_key))
        return raw_key

    def _setup_catalog(self) -> str:
        from customers.models import Customer, Organization
        from metrics.models import BillableMetric, BillableMetricFilter
        from plans import services as plan_services
        from plans.models import BillingTime, Subscription, SubscriptionStatus

        Organization.current()
        metric = BillableMetric.objects.create(name="Storage", code=CODE, aggregation_type="sum_agg", field_name="gb")
        BillableMetricFilter.objects.create(billable_metric=metric, key="region", values=list(REGIONS))
        plan = plan_services.plan_create(
            name="Bench usage",
            code="bench_usage",
            interval="monthly",
            amount_cents=4900,
            amount_currency="USD",
            charges=[
                {"billable_metric_id": str(metric.pk), "charge_model": "standard", "properties": {"amount": "0.001"}}
            ],
        )
        customer = Customer.objects.create(external_id=CUSTOMER, name="Bench usage", currency="USD")
        # Anniversary billing, started 15 days ago: the current period is half gone.
        started = self.now.replace(microsecond=0) - timedelta(days=15)
        Subscription.objects.create(
            external_id=SUBSCRIPTION,
            customer=customer,
            plan=plan,
            status=SubscriptionStatus.ACTIVE,
            billing_time=BillingTime.ANNIVERSARY,
            subscription_at=started,
            started_at=started,
        )
        return self._new_api_key()

    def _client(self) -> Any:
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.api_key}")
        return client

    def _get(self, client: Any) -> dict[str, Any]:
        answer = client.get(f"/api/v1/customers/{CUSTOMER}/current_usage", {"external_subscription_id": SUBSCRIPTION})
        if answer.status_code != 200:
            raise CommandError(f"current_usage answered {answer.status_code}: {answer.content[:500]!r}")
        return answer.json()

    def _period(self) -> tuple[datetime, datetime]:
        body = self._get(self._client())["customer_usage"]

        def parse(text: str) -> datetime:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)

        return parse(body["from_datetime"]), parse(body["to_datetime"])

    def _copy(self, count: int, start: datetime, end: datetime, prefix: str) -> None:
        from django.db import connection

        span = (end - start).total_seconds()
        buffer = io.StringIO()
        for i in range(count):
            at = start + timedelta(seconds=span * ((i * 7919) % count) / count)
            properties = f'{{"gb": {(i % 13) / 4}, "region": "{REGIONS[i % 3]}"}}'
            buffer.write(f"{prefix}{i}\t{SUBSCRIPTION}\t{CODE}\t{at.isoformat()}\t{properties}\n")
        raw = connection.connection
        with raw.cursor() as cursor:
            with cursor.copy(
                "COPY metrics_event (transaction_id, external_subscription_id, code, timestamp, properties) FROM STDIN"
            ) as copy:
                copy.write(buffer.getvalue())
        if not raw.autocommit:
            raw.commit()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE metrics_event")

    def _fold(self) -> float:
        """Fold as production does: the periodic task's service, run until nothing is left."""
        from metrics.rollups import usage_rollups_caught_up, usage_rollups_fold

        began = time.perf_counter()
        for _ in range(100):
            usage_rollups_fold(now=self.now, grace=self.grace)
            if usage_rollups_caught_up(now=self.now, grace=self.grace):
                break
        elapsed = time.perf_counter() - began
        from billing_project.benchmarks import analyze_filled_tables

        analyze_filled_tables()  # not the empty ones (it says why)
        return elapsed

    def _ingest_overhead(self, rounds: int = 6, batches: int = 40) -> tuple[float, float]:
        """Events/s of the ingestion service (100-event batches of live events for pairs that have
        a watermark) with the late-event trigger enabled and disabled, alternating rounds."""
        from django.db import connection
        from django.utils import timezone

        from metrics.ingestion import events_ingest_batch
        from metrics.models import UsageWatermark

        # Another subscription (the measured one's events stay as they are), with a watermark.
        UsageWatermark.objects.create(
            external_subscription_id=INGESTED, code=CODE, folded_until=self.watermark, pending_until=self.watermark
        )
        rates: dict[bool, list[float]] = {True: [], False: []}
        sequence = 0
        for round_number in range(rounds * 2):
            enabled = round_number % 2 == 0
            with connection.cursor() as cursor:
                cursor.execute(
                    f"ALTER TABLE metrics_event {'ENABLE' if enabled else 'DISABLE'} TRIGGER metrics_event_mark_late"
                )
            began = time.perf_counter()
            for _ in range(batches):
                now = timezone.now()
                events = []
                for _ in range(100):
                    sequence += 1
                    events.append(
                        {
                            "transaction_id": f"i{sequence}",
                            "external_subscription_id": INGESTED,
                            "code": CODE,
                            "timestamp": now.timestamp(),
                            "properties": {"gb": 1, "region": "eu"},
                        }
                    )
                events_ingest_batch(events=events, received_at=now)
            rates[enabled].append(batches * 100 / (time.perf_counter() - began))
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE metrics_event ENABLE TRIGGER metrics_event_mark_late")
        return statistics.median(rates[True]), statistics.median(rates[False])

    def _plain_sum(self) -> float:
        from django.db import connection

        timings = []
        for _ in range(5):
            began = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT sum((properties ->> 'gb')::numeric), count(*) FROM metrics_event "
                    "WHERE external_subscription_id = %s AND code = %s AND timestamp >= %s AND timestamp < %s",
                    [SUBSCRIPTION, CODE, self.period_start, self.period_end],
                )
                cursor.fetchall()
            timings.append((time.perf_counter() - began) * 1000)
        return statistics.median(timings)

    def _aggregation(self) -> tuple[float, float]:
        """Medians of the period's aggregation call itself, from the rollups and raw."""
        from metrics import aggregation
        from metrics.models import BillableMetric

        metric = BillableMetric.objects.get(code=CODE)

        def read() -> Any:
            return aggregation.aggregate(
                metric,
                external_subscription_ids=[SUBSCRIPTION],
                from_datetime=self.period_start,
                to_datetime=self.period_end,
            )

        def median_ms(runs: int) -> float:
            read()
            timings = []
            for _ in range(runs):
                began = time.perf_counter()
                read()
                timings.append((time.perf_counter() - began) * 1000)
            return statistics.median(timings)

        rolled = median_ms(9)
        with mock.patch.object(aggregation, "rollup_aggregate", return_value=None):
            raw = median_ms(3)
        return rolled, raw

    def _profile_request(self) -> None:
        """One request's statements (wall time each, as the client waits for it), where its
        Python time goes, and the plan of its longest statement."""
        import cProfile
        import pstats

        from django.db import connection

        client = self._client()
        self._get(client)
        statements: list[tuple[float, str, Any]] = []

        def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            began = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                statements.append(((time.perf_counter() - began) * 1000, sql, params))

        profiler = cProfile.Profile()
        began = time.perf_counter()
        with connection.execute_wrapper(timed):
            profiler.enable()
            self._get(client)
            profiler.disable()
        total = (time.perf_counter() - began) * 1000
        in_sql = sum(ms for ms, _, _ in statements)
        self.say(f"profile: one request {total:.1f} ms, {len(statements)} statements {in_sql:.1f} ms:")
        for ms, sql, _ in statements:
            self.say(f"  {ms:7.1f} ms  {' '.join(sql.split())[:150]}")
        report = io.StringIO()
        stats = pstats.Stats(profiler, stream=report)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(25)
        self.say(report.getvalue())
        _, sql, params = max(statements, key=lambda row: row[0])
        with connection.cursor() as cursor:
            for _ in range(2):
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
                plan = "\n".join(row[0] for row in cursor.fetchall())
        self.say(f"plan of the longest statement (second run):\n{plan}")

    def _current_usage(self, requests: int) -> tuple[float, dict[str, Any]]:
        client = self._client()
        body = self._get(client)
        self._get(client)  # warm-up
        timings = []
        for _ in range(requests):
            began = time.perf_counter()
            body = self._get(client)
            timings.append((time.perf_counter() - began) * 1000)
        self.fastest_ms = min(timings)  # the least disturbed request, for comparisons on a busy machine
        return statistics.median(timings), body
