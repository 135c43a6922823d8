"""Events and billable metrics API in Lago's paths and shapes. Thin: parse, call the services.

The two ingestion endpoints answer JSON text built by hand (serializers.events_json) straight
into an HttpResponse: DRF's renderer walking 100 event dicts costs more than the insert itself.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import BadRequest, NotFound, Unprocessable
from billing_project.api.identifiers import is_path_segment
from billing_project.api.params import datetime_param
from billing_project.api.views import paginated, unwrap
from metrics import ingestion, selectors, services
from metrics.models import BillableMetric

from .serializers import (
    BillableMetricDoc,
    BillableMetricInputDoc,
    EventDoc,
    EventInputDoc,
    events_json,
    serialize_billable_metric,
    serialize_event,
    serialize_events,
)

REPLAYED_HEADER = "Idempotent-Replayed"


def _events_response(root: str, events: list[ingestion.StoredEvent], many: bool, replayed: bool) -> HttpResponse:
    body = events_json(events)
    response = HttpResponse(
        f'{{"{root}":[{body}]}}' if many else f'{{"{root}":{body}}}', content_type="application/json"
    )
    if replayed:
        response[REPLAYED_HEADER] = "true"
    return response


_EVENT_RESPONSE = inline_serializer("EventResponse", fields={"event": EventDoc()})
_EVENTS_RESPONSE = inline_serializer("EventsResponse", fields={"events": EventDoc(many=True)})
_ERROR = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Lago's error shape")


class EventsView(APIView):
    resource_name = "event"

    @extend_schema(
        operation_id="createEvent",
        request=inline_serializer("CreateEventRequest", fields={"event": EventInputDoc()}),
        responses={200: _EVENT_RESPONSE, 422: _ERROR},
        description="Stores one usage event. An exact replay (same subscription, transaction_id and "
        "payload) answers 200 with the stored event and the header `Idempotent-Replayed: true`.",
    )
    def post(self, request: Request) -> HttpResponse:
        data = unwrap(request, "event")
        result = ingestion.event_ingest(data=data, received_at=timezone.now())
        return _events_response("event", result.events[:1], many=False, replayed=result.all_replayed)

    @extend_schema(
        operation_id="listEvents",
        parameters=[
            OpenApiParameter("code", str),
            OpenApiParameter("external_subscription_id", str),
            OpenApiParameter("timestamp_from", OpenApiTypes.DATETIME, description="inclusive"),
            OpenApiParameter("timestamp_to", OpenApiTypes.DATETIME, description="inclusive"),
            OpenApiParameter("page", int),
            OpenApiParameter("per_page", int),
        ],
        responses={200: _EVENTS_RESPONSE},
        description="Newest received first. meta.total_count is exact up to 10,000 events and the "
        "database's estimate beyond.",
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        queryset = selectors.events_list(
            code=params.get("code") or None,
            external_subscription_id=params.get("external_subscription_id") or None,
            timestamp_from=datetime_param(request, "timestamp_from"),
            timestamp_to=datetime_param(request, "timestamp_to"),
        )
        # meta.total_count: COUNT(*) over millions of events would cost more than the page.
        return paginated(
            request,
            queryset,
            "events",
            lambda page: serialize_events([ingestion.stored_event(e) for e in page]),
            many=True,
            count=selectors.capped_count,
        )


class EventsBatchView(APIView):
    resource_name = "event"

    @extend_schema(
        operation_id="createBatchEvents",
        request=inline_serializer("CreateBatchEventsRequest", fields={"events": EventInputDoc(many=True)}),
        responses={200: _EVENTS_RESPONSE, 422: _ERROR},
        description="Up to 100 events, stored atomically: one invalid event (errors keyed by its "
        "index) stores nothing. Exact replays are skipped; a batch of replays only answers the "
        "header `Idempotent-Replayed: true`.",
    )
    def post(self, request: Request) -> HttpResponse:
        data = request.data
        if not isinstance(data, dict):
            raise BadRequest("param is missing or the value is empty: events")
        result = ingestion.events_ingest_batch(events=data.get("events"), received_at=timezone.now())
        return _events_response("events", result.events, many=True, replayed=result.all_replayed)


class EventDetailView(APIView):
    resource_name = "event"

    @extend_schema(
        operation_id="findEvent",
        parameters=[OpenApiParameter("external_subscription_id", str, description="to pick among subscriptions")],
        responses={200: _EVENT_RESPONSE, 404: _ERROR},
    )
    def get(self, request: Request, transaction_id: str) -> Response:
        event = selectors.event_find(
            transaction_id=transaction_id,
            external_subscription_id=request.query_params.get("external_subscription_id") or None,
        )
        if event is None:
            raise NotFound("event")
        return Response({"event": serialize_event(ingestion.stored_event(event))})


# --- billable metrics ---

_STRING_FIELDS = (
    "name",
    "code",
    "description",
    "aggregation_type",
    "field_name",
    "weighted_interval",
    "rounding_function",
    "expression",
)


def _metric_params(data: dict[str, Any]) -> dict[str, Any]:
    """Type checks (Lago's codes); business rules are the service's."""
    params: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for field in _STRING_FIELDS:
        if field in data:
            value = data[field]
            if field == "code" and not is_path_segment(value):
                errors[field] = ["value_is_invalid"]
            elif value is None or isinstance(value, str):
                params[field] = value
            else:
                errors[field] = ["value_is_invalid"]
    if "recurring" in data:
        value = data["recurring"]
        if value is None or isinstance(value, bool):
            params["recurring"] = bool(value)
        else:
            errors["recurring"] = ["value_is_invalid"]
    if "rounding_precision" in data:
        value = data["rounding_precision"]
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            params["rounding_precision"] = value
        else:
            errors["rounding_precision"] = ["value_is_invalid"]
    if "filters" in data:
        params["filters"] = data["filters"]
    if errors:
        raise Unprocessable(errors)
    return params


def _live_metric(code: str) -> BillableMetric:
    metric = BillableMetric.live.filter(code=code).prefetch_related("filters").first()
    if metric is None:
        raise NotFound("billable_metric")
    return metric


_METRIC_REQUEST = inline_serializer("BillableMetricRequest", fields={"billable_metric": BillableMetricInputDoc()})
_METRIC_RESPONSE = inline_serializer("BillableMetricResponse", fields={"billable_metric": BillableMetricDoc()})


class BillableMetricsView(APIView):
    resource_name = "billable_metric"

    @extend_schema(
        operation_id="createBillableMetric",
        request=_METRIC_REQUEST,
        responses={200: _METRIC_RESPONSE, 422: _ERROR},
    )
    def post(self, request: Request) -> Response:
        params = _metric_params(unwrap(request, "billable_metric"))
        metric = services.billable_metric_create(
            name=params.get("name") or "",
            code=params.get("code") or "",
            aggregation_type=params.get("aggregation_type") or "",
            description=params.get("description") or "",
            field_name=params.get("field_name") or "",
            recurring=params.get("recurring", False),
            weighted_interval=params.get("weighted_interval") or "",
            rounding_function=params.get("rounding_function") or "",
            rounding_precision=params.get("rounding_precision"),
            expression=params.get("expression") or "",
            filters=params.get("filters"),
        )
        return Response({"billable_metric": serialize_billable_metric(metric, counters=True)})

    @extend_schema(
        operation_id="listBillableMetrics",
        parameters=[OpenApiParameter("page", int), OpenApiParameter("per_page", int)],
        responses={
            200: inline_serializer(
                "BillableMetricsResponse",
                fields={"billable_metrics": BillableMetricDoc(many=True), "meta": serializers.DictField()},
            )
        },
    )
    def get(self, request: Request) -> Response:
        queryset = BillableMetric.live.prefetch_related("filters").order_by("-created_at", "-id")
        return paginated(request, queryset, "billable_metrics", serialize_billable_metric)


class BillableMetricDetailView(APIView):
    resource_name = "billable_metric"

    @extend_schema(operation_id="findBillableMetric", responses={200: _METRIC_RESPONSE, 404: _ERROR})
    def get(self, request: Request, code: str) -> Response:
        return Response({"billable_metric": serialize_billable_metric(_live_metric(code))})

    @extend_schema(
        operation_id="updateBillableMetric",
        request=_METRIC_REQUEST,
        responses={200: _METRIC_RESPONSE, 404: _ERROR, 422: _ERROR},
    )
    def put(self, request: Request, code: str) -> Response:
        metric = _live_metric(code)
        params = _metric_params(unwrap(request, "billable_metric"))
        metric = services.billable_metric_update(metric=metric, changes=params)
        metric = _live_metric(metric.code)
        return Response({"billable_metric": serialize_billable_metric(metric, counters=True)})

    @extend_schema(operation_id="destroyBillableMetric", responses={200: _METRIC_RESPONSE, 404: _ERROR})
    def delete(self, request: Request, code: str) -> Response:
        metric = services.billable_metric_delete(metric=_live_metric(code))
        return Response({"billable_metric": serialize_billable_metric(metric, counters=True)})


class EvaluateExpressionView(APIView):
    """Lago's POST /billable_metrics/evaluate_expression: try an expression on a sample event."""

    resource_name = "billable_metric"

    @extend_schema(
        operation_id="evaluateBillableMetricExpression",
        request=inline_serializer(
            "EvaluateExpressionRequest",
            fields={
                "expression": serializers.CharField(),
                "event": inline_serializer(
                    "EvaluateExpressionEvent",
                    fields={
                        "code": serializers.CharField(required=False),
                        "timestamp": serializers.CharField(required=False),
                        "properties": serializers.DictField(required=False),
                    },
                ),
            },
        ),
        responses={
            200: inline_serializer(
                "EvaluateExpressionResponse",
                fields={
                    "expression_result": inline_serializer(
                        "ExpressionResult", fields={"value": serializers.CharField()}
                    )
                },
            ),
            422: _ERROR,
        },
    )
    def post(self, request: Request) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        value = services.billable_metric_evaluate_expression(
            expression=data.get("expression"), event=data.get("event"), now=timezone.now()
        )
        return Response({"expression_result": {"value": value}})
