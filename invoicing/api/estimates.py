"""Lago's fee estimates of an event not sent yet: POST /events/estimate_fees (Lago's fee objects,
taxed), /events/estimate_instant_fees and /events/batch_estimate_instant_fees (Lago's instant
fee payloads). Routed before metrics' `events/<transaction_id>` (billing_project.urls), which
would otherwise take these paths for a transaction id. Thin: invoicing.estimates prices."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import BadRequest
from billing_project.api.views import unwrap
from billing_project.money import to_cents

from .. import estimates
from . import serializers as s

_OBJECT = OpenApiResponse(response=OpenApiTypes.OBJECT)
_ERROR = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Lago's error shape")


class EstimateEventInput(serializers.Serializer):
    transaction_id = serializers.CharField(required=False, allow_null=True, max_length=255)
    external_subscription_id = serializers.CharField(max_length=255)
    code = serializers.CharField(max_length=255)
    properties = serializers.DictField(required=False, allow_null=True)


def _estimated_fee(estimated: estimates.EstimatedFee) -> dict[str, Any]:
    """Lago's fee object (V1::FeeSerializer) of an unsaved fee: no id, no invoice."""
    fee = estimated.fee
    answer = s.serialize_fee_unsaved(fee)
    answer["lago_id"] = None
    answer["event_transaction_id"] = estimated.transaction_id
    answer["applied_taxes"] = [
        {"lago_id": None, "lago_fee_id": None, **s.serialize_applied_tax(tax, fee.currency), "created_at": None}
        for tax in estimated.taxes
    ]
    return answer


def _instant_fee(estimated: estimates.EstimatedFee) -> dict[str, Any]:
    """Lago's Fees::EstimateInstant::BaseService payload (untaxed, amounts as figures)."""
    fee = estimated.fee
    answer = _estimated_fee(estimated)
    amount_cents = to_cents(fee.amount, fee.currency)
    answer.update(
        {
            "precise_amount": s._plain(fee.precise_amount),
            "precise_total_amount": s._plain(fee.precise_amount),
            "total_amount_cents": amount_cents,
            "precise_unit_amount": s._plain(fee.unit_amount * (10 ** s.decimal_places(fee.currency))),
            "payment_status": "pending",
            "amount_details": None,
            "applied_taxes": [],
        }
    )
    return answer


class EstimateFeesView(APIView):
    resource_name = "event"

    @extend_schema(
        operation_id="estimateFees",
        request=inline_serializer("EstimateFeesRequest", fields={"event": EstimateEventInput()}),
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def post(self, request: Request) -> Response:
        fees = estimates.fees_estimate(data=unwrap(request, "event"))
        return Response({"fees": [_estimated_fee(fee) for fee in fees]})


class EstimateInstantFeesView(APIView):
    resource_name = "event"

    @extend_schema(
        operation_id="estimateInstantFees",
        request=inline_serializer("EstimateInstantFeesRequest", fields={"event": EstimateEventInput()}),
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def post(self, request: Request) -> Response:
        fees = estimates.instant_fees_estimate(data=unwrap(request, "event"))
        return Response({"fees": [_instant_fee(fee) for fee in fees]})


class BatchEstimateInstantFeesView(APIView):
    resource_name = "event"

    @extend_schema(
        operation_id="batchEstimateInstantFees",
        request=inline_serializer("BatchEstimateInstantFeesRequest", fields={"events": EstimateEventInput(many=True)}),
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def post(self, request: Request) -> Response:
        data = request.data
        if not isinstance(data, dict) or not isinstance(data.get("events"), list):
            raise BadRequest("param is missing or the value is empty: events")
        fees = estimates.batch_instant_fees_estimate(events=data["events"])
        return Response({"fees": [_instant_fee(fee) for fee in fees]})


urlpatterns = [
    path("events/estimate_fees", EstimateFeesView.as_view(), name="events-estimate-fees"),
    path("events/estimate_instant_fees", EstimateInstantFeesView.as_view(), name="events-estimate-instant-fees"),
    path(
        "events/batch_estimate_instant_fees",
        BatchEstimateInstantFeesView.as_view(),
        name="events-batch-estimate-instant-fees",
    ),
]
