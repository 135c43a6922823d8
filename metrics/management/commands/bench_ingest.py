"""Benchmark event ingestion over HTTP against PostgreSQL's COPY, and a 1M-event sum."""

#     python manage.py bench_ingest [--events 200000] [--clients 4] [--sum-events 1000000]
#
# Runs against a database of its own, `tollgate_bench` on the PostgreSQL server of DATABASE_URL
# (or of --server; default postgres://postgres@127.0.0.1:5432), created, migrated (customers,
# metrics only) and dropped on every run (--keep-database keeps it). Steps:
#
# 1. gunicorn serves the API (2 workers, DEBUG off) on a free port; concurrent clients (threads,
#    http.client) post pre-built batches of 100 events: events/s and p50/p99 request latency;
# 2. the table is emptied and the same rows are loaded again with psycopg COPY (one stream):
#    rows/s, and the ratio HTTP / COPY, both measured in this run on these cores;
# 3. one subscription gets --sum-events events in one month (loaded by COPY), and the sum
#    aggregation of that month is timed (median of 5, after one warm-up).
#
# Figures, not assertions: other processes share the machine's cores, so compare within a run.
# The last line is a JSON object with the figures.

from __future__ import annotations

import http.client
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

BATCH_SIZE = 100
MONTH_START = datetime(2026, 1, 1, tzinfo=UTC)
MONTH_END = datetime(2026, 2, 1, tzinfo=UTC)
COLUMNS = "transaction_id, external_subscription_id, code, timestamp, properties, precise_total_amount_cents"


class Command(BaseCommand):
    help = "Benchmark the events batch API (gunicorn + PostgreSQL) against COPY, and a 1M-event sum."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--events", type=int, default=200_000, help="events posted over HTTP")
        parser.add_argument("--clients", type=int, default=6, help="concurrent HTTP clients")
        parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
        # gthread: a worker's second thread runs Python while the first waits on PostgreSQL, and
        # connections stay open (sync workers close each one). Measured on 2 cores, same run
        # conditions: ~14,000 events/s against ~12,000 for 2 sync workers.
        parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
        parser.add_argument("--worker-class", default="gthread", choices=["sync", "gthread"], help="gunicorn workers")
        parser.add_argument("--subscriptions", type=int, default=1_000, help="distinct subscriptions")
        parser.add_argument("--sum-events", type=int, default=1_000_000, help="events of the summed subscription")
        parser.add_argument("--server", default="", help="PostgreSQL server URL (default: DATABASE_URL's)")
        parser.add_argument("--database-name", default="tollgate_bench")
        parser.add_argument("--keep-database", action="store_true")
        parser.add_argument("--inner", action="store_true", help=f"(internal) run inside {'tollgate_bench'}")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["inner"]:
            Bench(self, options).run()
        else:
            self._outer(options)

    # The outer process owns the database's life; the inner one runs with DATABASE_URL pointing
    # at it, so that every Django connection (aggregation included) uses it.
    def _outer(self, options: dict[str, Any]) -> None:
        import psycopg

        server = options["server"] or os.environ.get("DATABASE_URL", "")
        if not server.startswith(("postgres://", "postgresql://")):
            server = "postgres://postgres@127.0.0.1:5432/postgres"
        parts = urlsplit(server)
        admin_url = urlunsplit(parts._replace(path="/postgres"))
        bench_url = urlunsplit(parts._replace(path=f"/{options['database_name']}"))
        name = options["database_name"]
        try:
            admin = psycopg.connect(admin_url, autocommit=True)
        except psycopg.OperationalError as error:
            raise CommandError(f"bench_ingest needs PostgreSQL ({admin_url}): {error}") from error
        with admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        env = {
            **os.environ,
            "DATABASE_URL": bench_url,
            "DEBUG": "0",
            # Production settings, but served over plain http on loopback: no https redirect.
            "SECURE_SSL_REDIRECT": "0",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "LOG_LEVEL": "WARNING",
        }
        argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "bench_ingest", "--inner"]
        for option in ("events", "clients", "workers", "threads", "worker_class", "subscriptions", "sum_events"):
            argv += [f"--{option.replace('_', '-')}", str(options[option])]
        try:
            completed = subprocess.run(argv, env=env, check=False)
        finally:
            if not options["keep_database"]:
                with psycopg.connect(admin_url, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if completed.returncode:
            raise CommandError(f"benchmark failed (exit {completed.returncode})")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _backend_pids() -> list[int]:
    """PostgreSQL backends serving this database (the workers' persistent connections)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (0 for those not visible: a remote server)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Bench:
    def __init__(self, command: BaseCommand, options: dict[str, Any]) -> None:
        self.out = command.stdout
        self.options = options
        self.events = options["events"] // BATCH_SIZE * BATCH_SIZE
        self.cpu_note = ""
        self.plain_sum_ms = 0.0

    def say(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def run(self) -> None:
        from django.db import connection

        started = time.perf_counter()
        call_command("migrate", "customers", verbosity=0)
        call_command("migrate", "metrics", verbosity=0)
        from customers.models import ApiKey, generate_api_key, hash_api_key

        raw_key = generate_api_key()
        ApiKey.objects.create(name="bench", display_prefix=raw_key[:10], key_hash=hash_api_key(raw_key))
        rows = self._rows()
        bodies = [
            json.dumps({"events": [self._payload(row) for row in rows[i : i + BATCH_SIZE]]}).encode()
            for i in range(0, len(rows), BATCH_SIZE)
        ]
        self.say(
            f"setup: {len(rows):,} events in {len(bodies):,} batches, {self.options['subscriptions']:,} "
            f"subscriptions ({time.perf_counter() - started:.1f} s); server {connection.settings_dict['HOST']}, "
            f"{os.cpu_count()} cores"
        )

        http_rate, p50, p99, errors = self._http(bodies, raw_key)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM metrics_event WHERE code = 'bench_calls'")
            stored = cursor.fetchone()[0]
        if stored != len(rows) or errors:
            raise CommandError(f"HTTP run stored {stored:,} of {len(rows):,} events ({errors} failed requests)")
        self.say(
            f"HTTP batch API: {http_rate:,.0f} events/s; request latency p50 {p50:.1f} ms, p99 {p99:.1f} ms "
            f"({self.options['clients']} clients, gunicorn {self.options['workers']} "
            f"{self.options['worker_class']} workers x "
            f"{self.options['threads']} threads)"
        )
        self.say(self.cpu_note)

        copy_rate = self._copy(rows)
        ratio = http_rate / copy_rate
        self.say(f"COPY (one stream, same rows, same table and indexes): {copy_rate:,.0f} rows/s")
        self.say(f"ratio HTTP / COPY: {ratio:.2f}")

        sum_ms = self._sum_aggregation()
        self.say(
            json.dumps(
                {
                    "events_per_second": round(http_rate),
                    "copy_rows_per_second": round(copy_rate),
                    "ratio": round(ratio, 3),
                    "p50_ms": round(p50, 1),
                    "p99_ms": round(p99, 1),
                    "sum_1m_ms": round(sum_ms, 1),
                    "plain_sum_1m_ms": round(self.plain_sum_ms, 1),
                    "sum_events": self.options["sum_events"],
                    "events": len(rows),
                }
            )
        )

    # --- data ---

    def _rows(self) -> list[tuple[str, str, str, datetime, str]]:
        subscriptions = self.options["subscriptions"]
        step = (MONTH_END - MONTH_START) / max(self.events, 1)
        run = secrets.token_hex(4)
        return [
            (
                f"{run}-{n:09d}",
                f"bench_sub_{n % subscriptions:05d}",
                "bench_calls",
                MONTH_START + n * step,
                json.dumps({"gb": n % 100, "region": "eu" if n % 3 else "us"}),
            )
            for n in range(self.events)
        ]

    @staticmethod
    def _payload(row: tuple[str, str, str, datetime, str]) -> dict[str, Any]:
        transaction_id, subscription, code, timestamp, properties = row
        return {
            "transaction_id": transaction_id,
            "external_subscription_id": subscription,
            "code": code,
            "timestamp": round(timestamp.timestamp(), 3),
            "properties": json.loads(properties),
        }

    # --- 1. HTTP ---

    def _http(self, bodies: list[bytes], raw_key: str) -> tuple[float, float, float, int]:
        port = _free_port()
        worker_class = "gthread" if self.options["threads"] > 1 else self.options["worker_class"]
        self.options["worker_class"] = worker_class
        gunicorn = Path(sys.executable).with_name("gunicorn")
        server = subprocess.Popen(
            [
                str(gunicorn),
                "billing_project.wsgi:application",
                "--workers",
                str(self.options["workers"]),
                "--worker-class",
                worker_class,
                "--threads",
                str(self.options["threads"]),
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "--backlog",
                "256",
            ],
            cwd=settings.BASE_DIR,
        )
        try:
            self._wait_until_up(port)
            headers = {"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"}
            # Warm-up: connections, imports and caches of both workers (not timed, not counted).
            warm = json.dumps({"events": [{"transaction_id": "w", "external_subscription_id": "warm", "code": "w"}]})
            for _ in range(20):
                self._post(http.client.HTTPConnection("127.0.0.1", port), warm.encode(), headers)

            latencies: list[float] = []
            errors = [0]
            next_index = iter(range(len(bodies)))
            lock = threading.Lock()

            def client() -> None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                while True:
                    with lock:
                        index = next(next_index, None)
                    if index is None:
                        return
                    began = time.perf_counter()
                    status, connection = self._post(connection, bodies[index], headers)
                    elapsed = time.perf_counter() - began
                    with lock:
                        latencies.append(elapsed * 1000)
                        if status != 200:
                            errors[0] += 1

            threads = [threading.Thread(target=client) for _ in range(self.options["clients"])]
            python_pids = [server.pid, *_children(server.pid)]
            # A backend that connects during the run (a worker the warm-up did not reach) counts
            # from zero: cpu_before holds only those already there.
            cpu_before = {pid: _cpu_seconds([pid]) for pid in python_pids + _backend_pids()}
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - began
            python_cpu = sum(_cpu_seconds([pid]) - cpu_before.get(pid, 0) for pid in python_pids)
            database_cpu = sum(_cpu_seconds([pid]) - cpu_before.get(pid, 0) for pid in _backend_pids())
            thousands = len(bodies) * BATCH_SIZE / 1000
            self.cpu_note = (
                f"CPU per 1,000 events: {python_cpu / thousands * 1000:.0f} ms in gunicorn (Python), "
                f"{database_cpu / thousands * 1000:.0f} ms in PostgreSQL; "
                f"{(python_cpu + database_cpu) / elapsed:.2f} of {os.cpu_count()} cores busy with them"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
        return (
            len(bodies) * BATCH_SIZE / elapsed,
            _percentile(latencies, 0.50),
            _percentile(latencies, 0.99),
            errors[0],
        )

    @staticmethod
    def _post(
        connection: http.client.HTTPConnection, body: bytes, headers: dict[str, str]
    ) -> tuple[int, http.client.HTTPConnection]:
        for attempt in range(2):
            try:
                connection.request("POST", "/api/v1/events/batch", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.will_close:  # gunicorn's sync workers close after each response
                    connection.close()
                    connection = http.client.HTTPConnection(connection.host, connection.port, timeout=60)
                return response.status, connection
            except (ConnectionError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(connection.host, connection.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _wait_until_up(port: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise CommandError("gunicorn did not come up")

    # --- 2. COPY ---

    def _copy(self, rows: list[tuple[str, str, str, datetime, str]]) -> float:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE metrics_event")
            cursor.execute("CHECKPOINT")
        raw = connection.connection  # psycopg 3
        began = time.perf_counter()
        with raw.transaction(), raw.cursor() as cursor:
            with cursor.copy(f"COPY metrics_event ({COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row((*row, None))
        return len(rows) / (time.perf_counter() - began)

    # --- 3. one subscription, 1M events, summed ---

    def _sum_aggregation(self) -> float:
        from django.db import connection

        from metrics.aggregation import aggregate
        from metrics.models import BillableMetric

        count = self.options["sum_events"]
        step = (MONTH_END - MONTH_START) / max(count, 1)
        began = time.perf_counter()
        raw = connection.connection
        with raw.transaction(), raw.cursor() as cursor:
            with cursor.copy(f"COPY metrics_event ({COLUMNS}) FROM STDIN") as copy:
                for n in range(count):
                    copy.write_row(
                        (f"big-{n}", "bench_big", "bench_gb", MONTH_START + n * step, f'{{"gb": {n % 7}}}', None)
                    )
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE metrics_event")
        self.say(f"loaded {count:,} events for one subscription ({time.perf_counter() - began:.1f} s)")

        metric = BillableMetric.objects.create(
            name="bench", code="bench_gb", aggregation_type="sum_agg", field_name="gb"
        )
        # Baseline in the same run: the plain, unguarded sum (it would fail on a non-numeric value),
        # alternated with the real aggregation so both see the same machine.
        plain = (
            "SELECT sum((properties ->> 'gb')::numeric) FROM metrics_event WHERE code = 'bench_gb' "
            "AND external_subscription_id = 'bench_big' AND timestamp >= %s AND timestamp < %s"
        )
        timings: list[float] = []
        baseline: list[float] = []
        result = None
        for _ in range(6):
            began = time.perf_counter()
            result = aggregate(
                metric, external_subscription_ids=["bench_big"], from_datetime=MONTH_START, to_datetime=MONTH_END
            )
            timings.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(plain, [MONTH_START, MONTH_END])
            baseline.append((time.perf_counter() - began) * 1000)
        expected = sum(n % 7 for n in range(count))
        if result is None or result.units != expected or result.events_count != count:
            raise CommandError(f"sum aggregation answered {result}, expected {expected} over {count} events")
        median = statistics.median(timings[1:])
        self.plain_sum_ms = statistics.median(baseline[1:])
        self.say(
            f"sum aggregation over {count:,} events of one subscription: {median:.0f} ms (median of 5); "
            f"the plain unguarded SUM in the same run: {self.plain_sum_ms:.0f} ms"
        )
        return median
