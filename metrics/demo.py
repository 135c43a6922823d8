"""Demo data for metrics: three billable metrics and events for the demo subscriptions
("sub_acme", "sub_tanaka", "sub_globex") over the previous and the current calendar month, plus
a day's burst of API calls so that today's current usage is past the free tier."""

# Safe to repeat: metrics are created only when their code is free, and events go through the
# real ingestion service with deterministic transaction ids, timestamps and properties, so a
# second load is a batch of exact replays that stores nothing. Events of the current month stop at
# the present moment (a later load adds the ones that have come due since).

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from billing_project.demo import DemoSummary

from . import ingestion, services
from .models import BillableMetric

METRICS: list[dict[str, Any]] = [
    {"name": "API calls", "code": "api_calls", "aggregation_type": "count_agg", "description": "Requests served"},
    {
        "name": "Storage (GB)",
        "code": "storage_gb",
        "aggregation_type": "weighted_sum_agg",
        "field_name": "gb",
        "recurring": True,
        "weighted_interval": "seconds",
        "rounding_function": "round",
        "rounding_precision": 2,
        "description": "Gigabytes stored, time-weighted over the period",
    },
    {
        "name": "Seats",
        "code": "seats",
        "aggregation_type": "unique_count_agg",
        "field_name": "user_id",
        "description": "Distinct users",
    },
]

# subscription -> (API calls per month, storage deltas in GB by day, seat operations by day)
USAGE: dict[str, tuple[int, list[tuple[int, int]], list[tuple[int, str, str]]]] = {
    "sub_acme": (
        150,
        [(0, 40), (6, 25), (17, -15)],
        [(1, "alice", "add"), (1, "bob", "add"), (3, "carol", "add"), (9, "dan", "add"), (14, "bob", "remove")],
    ),
    "sub_tanaka": (
        45,
        [(2, 5), (20, 3)],
        [(4, "hana", "add"), (11, "kenji", "add")],
    ),
    "sub_globex": (
        90,
        [(0, 10), (12, 10)],
        [(2, "amelie", "add"), (5, "louis", "add")],
    ),
}

# API calls sent today by each subscription, one a minute from midnight UTC: past the 1,000 free
# calls of the demo plans' graduated tiers once the day is well under way.
TODAYS_CALLS = 1_200


def _month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _events(month: datetime, month_end: datetime, now: datetime) -> Iterator[dict[str, Any]]:
    tag = f"{month:%Y%m}"
    span = (month_end - month).total_seconds()
    for subscription, (calls, storage, seats) in USAGE.items():
        for n in range(calls):
            # Spread over the month, on whole seconds, the same every load.
            at = month + timedelta(seconds=int(span * (n + 0.5) / calls))
            yield {
                "transaction_id": f"demo-{subscription}-{tag}-call-{n:04d}",
                "external_subscription_id": subscription,
                "code": "api_calls",
                "timestamp": int(at.timestamp()),
                "properties": {"region": "eu" if n % 3 else "us", "endpoint": "/v1/search" if n % 2 else "/v1/items"},
            }
        for n, (day, delta) in enumerate(storage):
            at = month + timedelta(days=day, hours=9)
            yield {
                "transaction_id": f"demo-{subscription}-{tag}-storage-{n}",
                "external_subscription_id": subscription,
                "code": "storage_gb",
                "timestamp": int(at.timestamp()),
                "properties": {"gb": delta},
            }
        for n, (day, user, operation) in enumerate(seats):
            at = month + timedelta(days=day, hours=10)
            yield {
                "transaction_id": f"demo-{subscription}-{tag}-seat-{n}",
                "external_subscription_id": subscription,
                "code": "seats",
                "timestamp": int(at.timestamp()),
                "properties": {"user_id": user, "operation_type": operation},
            }


def _todays_calls(now: datetime) -> Iterator[dict[str, Any]]:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for subscription in USAGE:
        for n in range(TODAYS_CALLS):
            yield {
                "transaction_id": f"demo-{subscription}-{day:%Y%m%d}-today-{n:04d}",
                "external_subscription_id": subscription,
                "code": "api_calls",
                "timestamp": int((day + timedelta(minutes=n)).timestamp()),
                "properties": {"region": "eu", "endpoint": "/v1/search"},
            }


def demo_events(now: datetime) -> list[dict[str, Any]]:
    """The demo's event payloads up to `now` (previous and current calendar month, UTC, and the
    burst of today's calls). Ids and timestamps are the same on every load of the same day."""
    current = _month_start(now.astimezone(UTC))
    previous = _month_start(current - timedelta(days=1))
    payloads = (
        list(_events(previous, current, now))
        + list(_events(current, _month_start(current + timedelta(days=32)), now))
        + list(_todays_calls(now))
    )
    return [p for p in payloads if p["timestamp"] <= now.timestamp()]


def load(*, stdout: Any, summary: DemoSummary | None = None) -> None:
    created = []
    for spec in METRICS:
        if not BillableMetric.live.filter(code=spec["code"]).exists():
            services.billable_metric_create(**spec)
            created.append(spec["code"])
    now = timezone.now()
    payloads = demo_events(now)
    stored = 0
    for start in range(0, len(payloads), ingestion.MAX_BATCH_SIZE):
        batch = payloads[start : start + ingestion.MAX_BATCH_SIZE]
        result = ingestion.events_ingest_batch(events=batch, received_at=now)
        stored += sum(1 for replayed in result.replayed if not replayed)
    stdout.write(
        f"metrics: {len(created)} metric(s) created ({', '.join(created) or 'all present'}); "
        f"{stored} of {len(payloads)} demo events stored (the rest were already there)"
    )
