"""Usage reads in Lago's paths and shapes: a customer's past usage (periods already billed) and
projected usage (the current period extrapolated), a subscription's lifetime usage (GET, PUT).
Thin: parse, read invoicing.past_usage / invoicing.projection / invoicing.monitoring.lifetime,
render with the current usage's serializers."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import NotFound, Unprocessable
from billing_project.api.views import paginated, unwrap
from billing_project.money import from_cents, to_cents
from customers.models import Customer
from metrics.models import BillableMetric
from plans import periods
from plans.api.serializers import iso
from plans.models import Subscription, SubscriptionStatus
from plans.subscriptions import live_subscription

from .. import past_usage, projection
from ..models import Fee, InvoiceSubscription
from ..monitoring import lifetime, thresholds
from ..usage import customer_usage
from . import serializers as s

_OBJECT = OpenApiResponse(response=OpenApiTypes.OBJECT)
_ERROR = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Lago's error shape")
_SUBSCRIPTION = OpenApiParameter("external_subscription_id", str, required=True)


def _customer(external_id: str) -> Customer:
    customer = Customer.live.filter(external_id=external_id).first()
    if customer is None:
        raise NotFound("customer")
    return customer


def _active_subscription(customer: Customer, external_subscription_id: str | None) -> Subscription:
    subscription = (
        Subscription.objects.select_related("plan", "customer")
        .filter(customer=customer, external_id=external_subscription_id or "", status=SubscriptionStatus.ACTIVE)
        .first()
    )
    if subscription is None:
        raise NotFound("subscription")
    return subscription


def _positive_int(params: Any, name: str) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    if not str(value).isdigit() or int(value) < 1 or int(value) > 10_000:
        raise Unprocessable({name: ["value_is_invalid"]})
    return int(value)


class PastUsageView(APIView):
    resource_name = "customer_usage"

    @extend_schema(
        operation_id="findAllCustomerPastUsage",
        parameters=[
            _SUBSCRIPTION,
            OpenApiParameter("billable_metric_code", str),
            OpenApiParameter("periods_count", int),
            OpenApiParameter("page", int),
            OpenApiParameter("per_page", int),
        ],
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def get(self, request: Request, external_id: str) -> Response:
        params = request.query_params
        external_subscription_id = params.get("external_subscription_id")
        if not external_subscription_id:
            raise Unprocessable({"external_subscription_id": ["value_is_mandatory"]})
        metric = None
        if params.get("billable_metric_code"):
            metric = BillableMetric.objects.filter(code=params["billable_metric_code"]).order_by("deleted_at").first()
            if metric is None:
                raise NotFound("billable_metric")
        periods_count = _positive_int(params, "periods_count")
        # As Lago's PastUsageQuery: an unknown customer has no periods (an empty list, not a 404).
        customer = Customer.live.filter(external_id=external_id).first()
        rows = (
            past_usage.past_usage_periods(
                customer=customer, external_subscription_id=external_subscription_id, periods_count=periods_count
            )
            if customer is not None
            else InvoiceSubscription.objects.none()
        )

        def render(page: Any) -> list[dict[str, Any]]:
            return [
                _usage_period(period) for period in past_usage.usage_periods_for(list(page), billable_metric=metric)
            ]

        return paginated(request, rows, "usage_periods", render, many=True)


def _usage_period(period: past_usage.UsagePeriod) -> dict[str, Any]:
    """Lago's V1::Customers::PastUsageSerializer."""
    row = period.invoice_subscription
    invoice = row.invoice
    currency = invoice.currency
    fees_cents = to_cents(invoice.fees_amount, currency)
    taxes_cents = to_cents(period.taxes_amount, currency)
    assert row.charges_from_datetime is not None and row.charges_to_datetime is not None  # the query's filter
    return {
        "from_datetime": iso(row.charges_from_datetime),
        "to_datetime": iso(row.charges_to_datetime - _SECOND),
        "issuing_date": invoice.issuing_date.isoformat(),
        "currency": currency,
        "amount_cents": fees_cents,
        "total_amount_cents": fees_cents + taxes_cents,
        "taxes_amount_cents": taxes_cents,
        "lago_invoice_id": str(invoice.pk),
        "charges_usage": s.serialize_charges_usage(period.fees, currency),
    }


class ProjectedUsageView(APIView):
    resource_name = "customer_usage"

    @extend_schema(
        operation_id="findCustomerProjectedUsage",
        parameters=[_SUBSCRIPTION, OpenApiParameter("apply_taxes", bool)],
        responses={200: _OBJECT, 404: _ERROR},
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = _customer(external_id)
        subscription = _active_subscription(customer, request.query_params.get("external_subscription_id"))
        now = timezone.now()
        usage = customer_usage(subscription=subscription, at=now)
        return Response({"customer_projected_usage": serialize_projected_usage(usage, at=now)})


def serialize_projected_usage(usage: Any, *, at: Any) -> dict[str, Any]:
    """Lago's V1::Customers::ProjectedUsageSerializer: the current usage with projected units
    and amounts on the usage, each charge, filter and group."""
    currency = usage.currency
    ratio = projection.period_ratio(
        from_datetime=usage.from_datetime,
        to_datetime=usage.to_datetime,
        at=at,
        timezone=periods.subscription_timezone(usage.subscription),
    )

    def projected(fees: list[Fee]) -> dict[str, Any]:
        figures = projection.fees_projection(fees, ratio=ratio, currency=currency)
        return {
            "projected_units": s._plain(figures.units),
            "projected_amount_cents": to_cents(figures.amount, currency),
            "projected_presentation_breakdowns": [],
        }

    answer = s.serialize_customer_usage(usage)
    charge_fees = s._usage_fees(usage)
    answer["charges_usage"] = s.serialize_charges_usage(charge_fees, currency, extra=projected)
    answer["projected_amount_cents"] = to_cents(
        projection.fees_projection(charge_fees, ratio=ratio, currency=currency).amount, currency
    )
    answer["invoice_id"] = None
    return answer


class LifetimeUsageInput(serializers.Serializer):
    external_historical_usage_amount_cents = s.StrictIntegerField(min_value=0, max_value=10**15)


class LifetimeUsageView(APIView):
    resource_name = "lifetime_usage"

    @extend_schema(operation_id="findSubscriptionLifetimeUsage", responses={200: _OBJECT, 404: _ERROR})
    def get(self, request: Request, external_id: str) -> Response:
        subscription = _subscription(external_id)
        return Response({"lifetime_usage": _lifetime_answer(subscription)})

    @extend_schema(
        operation_id="updateSubscriptionLifetimeUsage",
        request=inline_serializer("UpdateLifetimeUsageRequest", fields={"lifetime_usage": LifetimeUsageInput()}),
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def put(self, request: Request, external_id: str) -> Response:
        subscription = _subscription(external_id)
        serializer = LifetimeUsageInput(data=unwrap(request, "lifetime_usage"))
        serializer.is_valid(raise_exception=True)
        currency = str(subscription.plan.amount.currency)
        amount = from_cents(Decimal(serializer.validated_data["external_historical_usage_amount_cents"]), currency)
        lifetime.lifetime_usage_update(subscription=subscription, historical_usage_amount=amount)
        return Response({"lifetime_usage": _lifetime_answer(subscription)})


def _subscription(external_id: str) -> Subscription:
    subscription = live_subscription(external_id)
    if subscription is None or subscription.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TERMINATED):
        raise NotFound("subscription")
    return subscription


def _lifetime_answer(subscription: Subscription) -> dict[str, Any]:
    """Lago's V1::LifetimeUsageSerializer, usage thresholds included when the plan has some."""
    now = timezone.now()
    figures = lifetime.lifetime_usage_compute(subscription=subscription, at=now)
    currency = figures.currency
    answer: dict[str, Any] = {
        "lago_id": str(figures.row.pk),
        "lago_subscription_id": str(subscription.pk),
        "external_subscription_id": subscription.external_id,
        "external_historical_usage_amount_cents": to_cents(figures.historical_amount, currency),
        "invoiced_usage_amount_cents": to_cents(figures.invoiced_amount, currency),
        "current_usage_amount_cents": to_cents(figures.current_amount, currency),
        "from_datetime": iso(subscription.subscription_at),
        "to_datetime": iso(now),
    }
    completion = thresholds.thresholds_completion(figures)
    if completion is not None:
        answer["usage_thresholds"] = [
            {
                "amount_cents": row.amount_cents,
                "completion_ratio": float(row.completion_ratio),
                "reached_at": iso(row.reached_at) if row.reached_at else None,
            }
            for row in completion
        ]
    return answer


_SECOND = timedelta(seconds=1)

urlpatterns = [
    path("customers/<str:external_id>/past_usage", PastUsageView.as_view(), name="customer-past-usage"),
    path("customers/<str:external_id>/projected_usage", ProjectedUsageView.as_view(), name="customer-projected-usage"),
    path("subscriptions/<str:external_id>/lifetime_usage", LifetimeUsageView.as_view(), name="lifetime-usage"),
]
