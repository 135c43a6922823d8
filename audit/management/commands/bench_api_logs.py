"""Measure what writing API logs costs a request; prints figures, asserts nothing.

    DATABASE_URL=postgres://... python manage.py bench_api_logs --requests 300

Inside one transaction rolled back at the end (nothing stays): the same requests through the
whole stack (Django's test client, every middleware) with the API log middleware and without
it, in alternating rounds so that other load on the machine moves both: a write (POST
/customers, an upsert), a read (GET /customers, a page of 20) and event ingestion (POST /events,
skipped by default, then with TOLLGATE_API_LOGS_EVENTS on). Compare figures within one run.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.test import Client, override_settings

from customers.models import ApiKey, generate_api_key, hash_api_key
from metrics.models import BillableMetric

LOGGING_MIDDLEWARE = "audit.middleware.ApiLogMiddleware"
ROUNDS = 5


class _Rollback(Exception):
    pass


class Command(BaseCommand):
    help = "Benchmark the API log middleware: writes, reads and event ingestion, with and without it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--requests", type=int, default=300, help="requests per case and configuration")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with transaction.atomic():
                self._run(options["requests"])
                raise _Rollback
        except _Rollback:
            pass

    def _run(self, requests: int) -> None:
        out = self.stdout.write
        raw = generate_api_key()
        ApiKey.objects.create(name="bench", key_hash=hash_api_key(raw), display_prefix=raw[:8])
        BillableMetric.objects.create(code="bench_calls", name="Bench calls", aggregation_type="count_agg")
        headers = {"authorization": f"Bearer {raw}"}
        without = [name for name in settings.MIDDLEWARE if name != LOGGING_MIDDLEWARE]
        counter = iter(range(10**9))

        def write(client: Client) -> None:
            body = {"customer": {"external_id": f"bench_{next(counter) % 50}", "name": "Bench"}}
            client.post("/api/v1/customers", json.dumps(body), content_type="application/json", headers=headers)

        def read(client: Client) -> None:
            client.get("/api/v1/customers", {"per_page": 20}, headers=headers)

        def event(client: Client) -> None:
            body = {
                "event": {
                    "transaction_id": f"tx_{next(counter)}",
                    "external_subscription_id": "s",
                    "code": "bench_calls",
                }
            }
            client.post("/api/v1/events", json.dumps(body), content_type="application/json", headers=headers)

        out(f"API logs: ms per request through the whole stack ({requests} requests each, {ROUNDS} rounds)")
        for name, call, extra in (
            ("write POST /customers", write, {}),
            ("read  GET /customers (20)", read, {}),
            ("events POST /events, default (skipped)", event, {}),
            ("events POST /events, TOLLGATE_API_LOGS_EVENTS on", event, {"TOLLGATE_API_LOGS_EVENTS": True}),
        ):
            timings = {"unlogged": 0.0, "logged": 0.0}
            configurations = [("unlogged", without), ("logged", list(settings.MIDDLEWARE))]
            for round_number in range(ROUNDS):
                # Alternate which goes first, so that a table growing over the run weighs on both.
                for label, middleware in configurations[:: 1 if round_number % 2 == 0 else -1]:
                    with override_settings(MIDDLEWARE=middleware, **extra):
                        client = Client()
                        call(client)  # warm: middleware chain built, connection used
                        started = time.perf_counter()
                        for _ in range(requests // ROUNDS):
                            call(client)
                        timings[label] += time.perf_counter() - started
            per = {label: seconds / requests * 1000 for label, seconds in timings.items()}
            out(
                f"  {name:<52} unlogged {per['unlogged']:6.2f} ms  logged {per['logged']:6.2f} ms  "
                f"ratio {per['logged'] / per['unlogged']:.2f}"
            )
