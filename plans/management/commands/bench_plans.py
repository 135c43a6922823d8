"""Measure the plans hot paths on the current database; prints figures, asserts nothing.

    DATABASE_URL=postgres://... python manage.py bench_plans --subscriptions 2000

Pure maths first (charge models and periods, per call), then, inside one transaction that is
rolled back at the end (nothing stays): subscription creation through the service, the
subscriptions and plans lists through the API, and the hourly activation over pending rows.
Compare figures within one run, never across machines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.test import Client
from django.utils import timezone

from customers.models import ApiKey, Customer, Organization, generate_api_key, hash_api_key
from metrics.models import BillableMetric
from plans import charge_models, periods, services
from plans.models import Subscription

GRADUATED = {
    "graduated_ranges": [
        {"from_value": 0, "to_value": 1000, "per_unit_amount": "0", "flat_amount": "0"},
        {"from_value": 1001, "to_value": 10000, "per_unit_amount": "0.002", "flat_amount": "0"},
        {"from_value": 10001, "to_value": None, "per_unit_amount": "0.001", "flat_amount": "1"},
    ]
}
PERCENTAGE = {
    "rate": "1.2",
    "fixed_amount": "0.10",
    "free_units_per_events": 3,
    "per_transaction_min_amount": "0.2",
    "per_transaction_max_amount": "5",
}


class _Rollback(Exception):
    pass


def per_call(function: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls * 1e6


class Command(BaseCommand):
    help = "Benchmark charge models, periods, subscription creation, the API lists and activation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--subscriptions", type=int, default=2000)
        parser.add_argument("--calls", type=int, default=20_000)

    def handle(self, *args: Any, **options: Any) -> None:
        calls = options["calls"]
        out = self.stdout.write
        units = Decimal(25_000)
        events = [Decimal(n % 97 + 1) for n in range(100)]
        anchor = datetime(2023, 1, 31, 9, tzinfo=UTC)
        at = datetime(2024, 7, 15, 12, tzinfo=UTC)
        cases: list[tuple[str, Callable[[], Any], int]] = [
            ("standard compute", lambda: charge_models.compute("standard", {"amount": "0.05"}, units=units), calls),
            ("graduated (3 tiers) compute", lambda: charge_models.compute("graduated", GRADUATED, units=units), calls),
            (
                "percentage (100 events, free events, min/max) compute",
                lambda: charge_models.compute(
                    "percentage", PERCENTAGE, units=sum(events, Decimal(0)), event_values=events
                ),
                calls // 10,
            ),
            (
                "billing_period (monthly anniversary, Asia/Tokyo)",
                lambda: periods.billing_period(
                    interval="monthly", billing_time="anniversary", anchor=anchor, at=at, tz="Asia/Tokyo"
                ),
                calls,
            ),
        ]
        for label, function, count in cases:
            out(f"{label}: {per_call(function, count):.1f} us/call")
        try:
            with transaction.atomic():
                self._database(options["subscriptions"])
                raise _Rollback
        except _Rollback:
            out("(database rows rolled back)")

    def _database(self, count: int) -> None:
        out = self.stdout.write
        Organization.current()
        tag = f"bench-plans-{int(timezone.now().timestamp())}"
        metric = BillableMetric.objects.create(name="bench", code=f"{tag}-calls", aggregation_type="count_agg")
        for index in range(100):
            services.plan_create(
                name=f"P{index}",
                code=f"{tag}-p{index}",
                interval="monthly",
                amount_cents=1000 + index,
                amount_currency="USD",
                charges=[
                    {"billable_metric_id": str(metric.pk), "charge_model": "graduated", "properties": GRADUATED},
                    {"billable_metric_id": str(metric.pk), "charge_model": "standard", "properties": {"amount": "1"}},
                    {"billable_metric_id": str(metric.pk), "charge_model": "percentage", "properties": PERCENTAGE},
                ],
            )
        plan = services.plan_create(
            name="Bench", code=f"{tag}-main", interval="monthly", amount_cents=4900, amount_currency="USD"
        )
        customers = Customer.objects.bulk_create(
            [Customer(external_id=f"{tag}-c{n}", name=f"c{n}") for n in range(count)]
        )
        now = timezone.now()
        started = time.perf_counter()
        for n, customer in enumerate(customers):
            services.subscription_create(
                customer=customer,
                plan=plan,
                external_id=f"{tag}-s{n}",
                # Half start now, half next week (pending, for the activation run below).
                subscription_at=now if n % 2 else now + timedelta(days=7),
                now=now,
            )
        elapsed = time.perf_counter() - started
        out(f"subscription_create: {elapsed / count * 1000:.2f} ms each ({count} customers)")

        raw = generate_api_key()
        ApiKey.objects.create(name="bench", display_prefix=raw[:10], key_hash=hash_api_key(raw))
        client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
        for path in (
            "/api/v1/subscriptions?per_page=100",
            "/api/v1/subscriptions?per_page=100&status[]=pending",
            "/api/v1/plans?per_page=100",
            f"/api/v1/subscriptions/{tag}-s1",
        ):
            client.get(path)  # warm up
            timings = []
            for _ in range(10):
                started = time.perf_counter()
                response = client.get(path)
                timings.append(time.perf_counter() - started)
                assert response.status_code == 200, response.content
            timings.sort()
            out(f"GET {path.replace(tag, '<tag>')}: median {timings[5] * 1000:.1f} ms")

        due = now + timedelta(days=8)
        pending = Subscription.objects.filter(external_id__startswith=tag, status="pending").count()
        started = time.perf_counter()
        counts = services.subscriptions_activate_due(now=due)
        elapsed = time.perf_counter() - started
        out(f"subscriptions_activate_due: {counts['activated']} of {pending} activated in {elapsed:.2f} s")
        started = time.perf_counter()
        services.subscriptions_activate_due(now=due)
        out(f"subscriptions_activate_due with nothing due: {(time.perf_counter() - started) * 1000:.1f} ms")
