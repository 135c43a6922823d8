"""Lago's analytics endpoints, in its shapes: /api/v1/analytics/gross_revenue, /invoiced_usage,
/invoice_collection, /mrr, /overdue_balance. Thin: parse the filters, read invoicing.analytics
(the dashboard's selectors), render amounts as integer cents and months as Lago's timestamps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import Unprocessable
from billing_project.money import is_currency, to_cents

from .. import analytics

_FILTERS = [
    OpenApiParameter("currency", str),
    OpenApiParameter("months", int),
    OpenApiParameter("external_customer_id", str),
]


def _month(figure: analytics.MonthFigure) -> str:
    return f"{figure.month:%Y-%m-%d}T00:00:00.000Z"


def _filters(request: Request, *, customer: bool = True) -> dict[str, Any]:
    params = request.query_params
    filters: dict[str, Any] = {}
    currency = (params.get("currency") or "").upper()
    if currency:
        if not is_currency(currency):
            raise Unprocessable({"currency": ["value_is_invalid"]})
        filters["currency"] = currency
    months = params.get("months")
    if months:
        if not months.isdigit():
            raise Unprocessable({"months": ["value_is_invalid"]})
        filters["months"] = int(months)
    if customer and params.get("external_customer_id"):
        filters["external_customer_id"] = params["external_customer_id"]
    return filters


def _view(
    name: str, root: str, read: Callable[..., list[analytics.MonthFigure]], shape: Callable[..., dict[str, Any]]
) -> type[APIView]:
    customer_filter = read is not analytics.invoice_collection

    class AnalyticsView(APIView):
        @extend_schema(
            operation_id=f"analytics_{name}",
            tags=["analytics"],
            parameters=_FILTERS if customer_filter else _FILTERS[:2],
            responses={200: OpenApiResponse(response=OpenApiTypes.OBJECT)},
        )
        def get(self, request: Request) -> Response:
            figures = read(**_filters(request, customer=customer_filter))
            return Response({root: [shape(figure) for figure in figures]})

    AnalyticsView.__name__ = AnalyticsView.__qualname__ = f"{name.title().replace('_', '')}View"
    return AnalyticsView


def _gross_revenue(figure: analytics.MonthFigure) -> dict[str, Any]:
    return {
        "month": _month(figure),
        "amount_cents": to_cents(figure.amount, figure.currency),
        "currency": figure.currency,
        "invoices_count": figure.count,
    }


def _invoiced_usage(figure: analytics.MonthFigure) -> dict[str, Any]:
    return {
        "month": _month(figure),
        "amount_cents": to_cents(figure.amount, figure.currency),
        "currency": figure.currency,
        "code": figure.key,
    }


def _invoice_collection(figure: analytics.MonthFigure) -> dict[str, Any]:
    return {
        "month": _month(figure),
        "amount_cents": to_cents(figure.amount, figure.currency),
        "currency": figure.currency,
        "invoices_count": figure.count,
        "payment_status": figure.key,
    }


def _mrr(figure: analytics.MonthFigure) -> dict[str, Any]:
    return {
        "month": _month(figure),
        "amount_cents": to_cents(figure.amount, figure.currency),
        "currency": figure.currency,
    }


def _overdue_balance(figure: analytics.MonthFigure) -> dict[str, Any]:
    return {
        "month": _month(figure),
        "amount_cents": to_cents(figure.amount, figure.currency),
        "currency": figure.currency,
        "lago_invoice_ids": figure.invoice_ids,
    }


urlpatterns = [
    path(
        "analytics/gross_revenue",
        _view("gross_revenue", "gross_revenues", analytics.gross_revenue, _gross_revenue).as_view(),
        name="analytics-gross-revenue",
    ),
    path(
        "analytics/invoiced_usage",
        _view("invoiced_usage", "invoiced_usages", analytics.invoiced_usage, _invoiced_usage).as_view(),
        name="analytics-invoiced-usage",
    ),
    path(
        "analytics/invoice_collection",
        _view("invoice_collection", "invoice_collections", analytics.invoice_collection, _invoice_collection).as_view(),
        name="analytics-invoice-collection",
    ),
    path("analytics/mrr", _view("mrr", "mrrs", analytics.mrr, _mrr).as_view(), name="analytics-mrr"),
    path(
        "analytics/overdue_balance",
        _view("overdue_balance", "overdue_balances", analytics.overdue_balance, _overdue_balance).as_view(),
        name="analytics-overdue-balance",
    ),
]
