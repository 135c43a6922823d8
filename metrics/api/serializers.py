"""Lago's JSON shapes for events and billable metrics (plain functions: the event ones run on the
ingestion hot path, where DRF serializers cost more than the database insert)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, overload

from rest_framework import serializers

from metrics.ingestion import StoredEvent
from metrics.models import BillableMetric, event_lago_id


def iso_milliseconds(moment: datetime) -> str:
    """Lago's event timestamp: 2022-04-29T08:59:51.123Z."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def iso_seconds(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


@overload
def decimal_text(value: Decimal) -> str: ...
@overload
def decimal_text(value: None) -> None: ...
@overload
def decimal_text(value: Decimal | None) -> str | None: ...
def decimal_text(value: Decimal | None) -> str | None:
    """1234.560000000000000 -> "1234.56" (as Lago prints a BigDecimal), 100 -> "100"."""
    if value is None:
        return None
    return format(value.normalize(), "f")


def serialize_event(event: StoredEvent, created_at_text: str | None = None) -> dict[str, Any]:
    return {
        "lago_id": event_lago_id(event.id),
        "transaction_id": event.transaction_id,
        # Subscriptions and customers live to the right (plans, customers): an event is stored
        # without resolving them, so these stay null, as Lago answers for an unmatched event.
        "lago_customer_id": None,
        "code": event.code,
        "timestamp": iso_milliseconds(event.timestamp),
        "precise_total_amount_cents": decimal_text(event.precise_total_amount_cents),
        "properties": event.properties,
        "lago_subscription_id": None,
        "external_subscription_id": event.external_subscription_id,
        "created_at": created_at_text or iso_seconds(event.created_at),
    }


def events_json(events: list[StoredEvent]) -> str:
    """The same answers as serialize_event, as JSON text built by hand: the ingestion endpoints
    answer every event they stored, and an encoder walking dicts costs more than the insert.
    Properties reuse the JSON text ingestion already encoded."""
    formatted: dict[datetime, str] = {}
    parts = []
    for event in events:
        created = formatted.get(event.created_at)
        if created is None:
            created = formatted[event.created_at] = iso_seconds(event.created_at)
        precise = event.precise_total_amount_cents
        properties = event.properties_json
        if properties is None:
            properties = json.dumps(event.properties)
        parts.append(
            f'{{"lago_id":"{event_lago_id(event.id)}","transaction_id":{_quote(event.transaction_id)},'
            f'"lago_customer_id":null,"code":{_quote(event.code)},'
            f'"timestamp":"{event.timestamp_text or iso_milliseconds(event.timestamp)}",'
            f'"precise_total_amount_cents":{"null" if precise is None else _quote(decimal_text(precise))},'
            f'"properties":{properties},"lago_subscription_id":null,'
            f'"external_subscription_id":{_quote(event.external_subscription_id)},"created_at":"{created}"}}'
        )
    return ",".join(parts)


def serialize_events(events: list[StoredEvent]) -> list[dict[str, Any]]:
    # A batch shares one created_at (the transaction's now()): format it once.
    formatted: dict[datetime, str] = {}
    answer = []
    for event in events:
        text = formatted.get(event.created_at)
        if text is None:
            text = formatted[event.created_at] = iso_seconds(event.created_at)
        answer.append(serialize_event(event, text))
    return answer


def serialize_billable_metric(metric: BillableMetric, *, counters: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "lago_id": str(metric.id),
        "name": metric.name,
        "code": metric.code,
        "description": metric.description or None,
        "aggregation_type": metric.aggregation_type,
        "weighted_interval": metric.weighted_interval or None,
        "recurring": metric.recurring,
        "rounding_function": metric.rounding_function or None,
        "rounding_precision": metric.rounding_precision,
        "created_at": iso_seconds(metric.created_at),
        "field_name": metric.field_name or None,
        "expression": metric.expression or None,
    }
    if counters:
        # Lago answers these (deprecated) counters on create/update/delete; Tollgate has no
        # cheap source for them on this side of the one-way street.
        body.update(active_subscriptions_count=0, draft_invoices_count=0, plans_count=0)
    filters = sorted(metric.filters.all(), key=lambda f: f.key)
    body["filters"] = [{"key": f.key, "values": list(f.values)} for f in filters]
    return body


# --- OpenAPI documentation only (the views validate by hand) ---


class EventInputDoc(serializers.Serializer):
    transaction_id = serializers.CharField()
    external_subscription_id = serializers.CharField()
    code = serializers.CharField()
    timestamp = serializers.CharField(required=False, allow_null=True, help_text="Unix seconds: int, float or string")
    properties = serializers.DictField(required=False, allow_null=True)
    precise_total_amount_cents = serializers.CharField(required=False, allow_null=True)


class EventDoc(serializers.Serializer):
    lago_id = serializers.UUIDField()
    transaction_id = serializers.CharField()
    lago_customer_id = serializers.UUIDField(allow_null=True)
    code = serializers.CharField()
    timestamp = serializers.DateTimeField()
    precise_total_amount_cents = serializers.CharField(allow_null=True)
    properties = serializers.DictField()
    lago_subscription_id = serializers.UUIDField(allow_null=True)
    external_subscription_id = serializers.CharField()
    created_at = serializers.DateTimeField()


class BillableMetricFilterDoc(serializers.Serializer):
    key = serializers.CharField()
    values = serializers.ListField(child=serializers.CharField())


class BillableMetricInputDoc(serializers.Serializer):
    name = serializers.CharField()
    code = serializers.CharField()
    description = serializers.CharField(required=False, allow_null=True)
    aggregation_type = serializers.ChoiceField(
        choices=["count_agg", "unique_count_agg", "latest_agg", "max_agg", "sum_agg", "weighted_sum_agg"]
    )
    # DRF's serializer metaclass moves declared fields off the class, so this does not shadow
    # Field.field_name at run time; the stubs see a class attribute of another type.
    field_name = serializers.CharField(required=False, allow_null=True)  # type: ignore[assignment]
    recurring = serializers.BooleanField(required=False)
    weighted_interval = serializers.ChoiceField(choices=["seconds"], required=False, allow_null=True)
    rounding_function = serializers.ChoiceField(choices=["round", "ceil", "floor"], required=False, allow_null=True)
    rounding_precision = serializers.IntegerField(required=False, allow_null=True)
    filters = BillableMetricFilterDoc(many=True, required=False)


class BillableMetricDoc(BillableMetricInputDoc):
    lago_id = serializers.UUIDField()
    created_at = serializers.DateTimeField()
    expression = serializers.CharField(allow_null=True)
