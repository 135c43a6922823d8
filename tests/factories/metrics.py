"""Test data builders for the metrics app (plain functions, keyword arguments)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from itertools import count
from typing import Any

from metrics.models import BillableMetric, BillableMetricFilter, Event

_sequence = count(1)


def make_metric(
    *,
    code: str = "api_calls",
    aggregation_type: str = "count_agg",
    field_name: str = "",
    filters: dict[str, list[str]] | None = None,
    **fields: Any,
) -> BillableMetric:
    fields.setdefault("name", code.replace("_", " ").title())
    metric = BillableMetric.objects.create(
        code=code, aggregation_type=aggregation_type, field_name=field_name, **fields
    )
    for key, values in (filters or {}).items():
        BillableMetricFilter.objects.create(billable_metric=metric, key=key, values=values)
    return metric


def make_event(
    *,
    timestamp: datetime,
    code: str = "api_calls",
    external_subscription_id: str = "sub_1",
    properties: dict[str, Any] | None = None,
    transaction_id: str | None = None,
    precise_total_amount_cents: Decimal | str | None = None,
) -> Event:
    return Event.objects.create(
        transaction_id=transaction_id or f"tx_{next(_sequence)}",
        external_subscription_id=external_subscription_id,
        code=code,
        timestamp=timestamp,
        properties=properties or {},
        precise_total_amount_cents=precise_total_amount_cents,
    )


def make_events(rows: Iterable[dict[str, Any]]) -> list[Event]:
    """Many events in one INSERT; each row takes make_event's keywords."""
    events = [
        Event(
            transaction_id=row.get("transaction_id") or f"tx_{next(_sequence)}",
            external_subscription_id=row.get("external_subscription_id", "sub_1"),
            code=row.get("code", "api_calls"),
            timestamp=row["timestamp"],
            properties=row.get("properties") or {},
            precise_total_amount_cents=row.get("precise_total_amount_cents"),
        )
        for row in rows
    ]
    return Event.objects.bulk_create(events)


def event_payload(**overrides: Any) -> dict[str, Any]:
    """An API event body (the inside of {"event": ...})."""
    payload: dict[str, Any] = {
        "transaction_id": f"tx_{next(_sequence)}",
        "external_subscription_id": "sub_1",
        "code": "api_calls",
        "timestamp": 1_700_000_000,
        "properties": {"gb": 10},
    }
    payload.update(overrides)
    return payload
