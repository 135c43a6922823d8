"""GET /api/v1/activity_logs[/{activity_id}] and /api/v1/api_logs[/{request_id}] in Lago's
shapes (app/serializers/v1/activity_log_serializer.rb, api_log_serializer.rb) and filters
(app/controllers/api/v1/activity_logs_controller.rb, api_logs_controller.rb). Thin."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.db.models import Q
from django.utils.dateparse import parse_date
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import NotFound, Unprocessable
from billing_project.api.params import datetime_param
from billing_project.api.views import paginated

from . import activity
from .models import ApiLog

_ERROR = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Lago's error shape")
_PAGE = [OpenApiParameter("page", int), OpenApiParameter("per_page", int)]
_DATES = [OpenApiParameter("from_date", OpenApiTypes.DATE), OpenApiParameter("to_date", OpenApiTypes.DATE)]


def _list(request: Request, name: str) -> tuple[str, ...]:
    """Lago's array filters: `name[]=a&name[]=b`, also `name=a,b`."""
    values = request.query_params.getlist(f"{name}[]") or request.query_params.getlist(name)
    return tuple(item.strip() for value in values for item in value.split(",") if item.strip())


def _date(request: Request, name: str, *, end: bool = False) -> datetime | None:
    """A date (Lago's) or a datetime; a date's end is the end of that day (UTC)."""
    raw = request.query_params.get(name) or ""
    try:
        day = parse_date(raw) if raw and "T" not in raw else None
    except ValueError:
        raise Unprocessable({name: ["invalid_date"]}) from None
    if day is not None:
        moment = datetime.combine(day, time.min, tzinfo=UTC)
        return moment + timedelta(days=1) - timedelta(microseconds=1) if end else moment
    return datetime_param(request, name)


def _iso(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


# --- activity logs --------------------------------------------------------------------------


class ActivityLogsView(APIView):
    resource_name = "activity_log"

    @extend_schema(
        operation_id="findAllActivityLogs",
        parameters=[
            *_PAGE,
            *_DATES,
            OpenApiParameter("activity_types[]", str, many=True, description="e.g. customer.created"),
            OpenApiParameter("activity_sources[]", str, many=True, enum=list(activity.SOURCES)),
            OpenApiParameter("user_emails[]", str, many=True),
            OpenApiParameter("external_customer_id", str),
            OpenApiParameter("resource_ids[]", str, many=True),
            OpenApiParameter("resource_types[]", str, many=True, description="e.g. Customer, Invoice"),
        ],
        responses={200: OpenApiTypes.OBJECT, 422: _ERROR},
        description="Who did what, newest first: the change history of the catalogue, customers and "
        "the organization, and the invoices' and credit notes' events. Kept forever.",
    )
    def get(self, request: Request) -> Response:
        sources = _list(request, "activity_sources")
        if any(source not in activity.SOURCES for source in sources):
            raise Unprocessable({"activity_sources": ["value_is_invalid"]})
        filters = activity.ActivityFilters(
            from_date=_date(request, "from_date"),
            to_date=_date(request, "to_date", end=True),
            activity_types=_list(request, "activity_types"),
            activity_sources=sources,
            user_emails=_list(request, "user_emails"),
            external_customer_id=request.query_params.get("external_customer_id") or None,
            resource_ids=_list(request, "resource_ids"),
            resource_types=_list(request, "resource_types"),
        )
        return paginated(
            request,
            activity.activities(filters),
            "activity_logs",
            lambda page: activity.activity_rows([(source, row_id) for source, row_id, _ in page]),
            many=True,
        )


class ActivityLogView(APIView):
    resource_name = "activity_log"

    @extend_schema(operation_id="findActivityLog", responses={200: OpenApiTypes.OBJECT, 404: _ERROR})
    def get(self, request: Request, activity_id: str) -> Response:
        key = activity.parse_activity_id(activity_id)
        rows = activity.activity_rows([key]) if key is not None else []
        if not rows:
            raise NotFound("activity_log")
        return Response({"activity_log": rows[0]})


# --- API logs -------------------------------------------------------------------------------


def serialize_api_log(log: ApiLog) -> dict[str, Any]:
    return {
        "request_id": str(log.request_id),
        "client": log.client,
        "http_method": log.http_method.lower(),
        "http_status": log.http_status,
        "request_origin": log.request_origin,
        "request_path": log.request_path,
        "request_body": log.request_body or {},
        "request_response": log.request_response,
        "api_version": log.api_version,
        "logged_at": _iso(log.logged_at),
        "created_at": _iso(log.created_at),
        # Tollgate's: the key that made the request, and how long the answer took.
        "api_key_name": log.api_key_name or None,
        "duration_ms": log.duration_ms,
    }


def _statuses(request: Request) -> Q | None:
    """`http_statuses[]`: codes (404) or Lago's `succeeded` / `failed`."""
    condition = Q()
    values = _list(request, "http_statuses")
    for value in values:
        if value == "succeeded":
            condition |= Q(http_status__lt=400)
        elif value == "failed":
            condition |= Q(http_status__gte=400)
        elif value.isdigit() and len(value) == 3:
            condition |= Q(http_status=int(value))
        else:
            raise Unprocessable({"http_statuses": ["value_is_invalid"]})
    return condition if values else None


class ApiLogsView(APIView):
    resource_name = "api_log"

    @extend_schema(
        operation_id="findAllApiLogs",
        parameters=[
            *_PAGE,
            *_DATES,
            OpenApiParameter("http_methods[]", str, many=True, enum=["get", "post", "put", "patch", "delete"]),
            OpenApiParameter("http_statuses[]", str, many=True, description="a code, succeeded or failed"),
            OpenApiParameter("api_version", str),
            OpenApiParameter("request_paths[]", str, many=True),
            OpenApiParameter("clients[]", str, many=True),
        ],
        responses={200: OpenApiTypes.OBJECT, 422: _ERROR},
        description="Each API request, newest first (kept TOLLGATE_API_LOG_RETENTION_DAYS days; event "
        "ingestion only with TOLLGATE_API_LOGS_EVENTS), secrets redacted.",
    )
    def get(self, request: Request) -> Response:
        rows = ApiLog.objects.all()
        from_date, to_date = _date(request, "from_date"), _date(request, "to_date", end=True)
        if from_date is not None:
            rows = rows.filter(logged_at__gte=from_date)
        if to_date is not None:
            rows = rows.filter(logged_at__lte=to_date)
        methods = [method.upper() for method in _list(request, "http_methods")]
        if methods:
            rows = rows.filter(http_method__in=methods)
        statuses = _statuses(request)
        if statuses is not None:
            rows = rows.filter(statuses)
        if request.query_params.get("api_version"):
            rows = rows.filter(api_version=request.query_params["api_version"])
        paths = _list(request, "request_paths")
        if paths:
            rows = rows.filter(request_path__in=paths)
        clients = _list(request, "clients")
        if clients:
            rows = rows.filter(client__in=clients)
        return paginated(request, rows.order_by("-logged_at", "-id"), "api_logs", serialize_api_log)


class ApiLogView(APIView):
    resource_name = "api_log"

    @extend_schema(operation_id="findApiLog", responses={200: OpenApiTypes.OBJECT, 404: _ERROR})
    def get(self, request: Request, request_id: str) -> Response:
        try:
            key = uuid.UUID(request_id)
        except ValueError:
            raise NotFound("api_log") from None
        log = ApiLog.objects.filter(request_id=key).first()
        if log is None:
            raise NotFound("api_log")
        return Response({"api_log": serialize_api_log(log)})
