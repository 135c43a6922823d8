"""Lago's /plans/{code}/fixed_charges[/{fixed_charge_code}] routes (index, create, show, update,
destroy) and the fixed_charge object (V1::FixedChargeSerializer). Thin: plans.fixed_charges."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import NotFound
from billing_project.api.views import paginated, unwrap

from .. import fixed_charges
from ..models import Plan
from .serializers import iso

_OBJECT = OpenApiResponse(response=OpenApiTypes.OBJECT)
_ERROR = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Lago's error shape")


class FixedChargeInput(serializers.Serializer):
    add_on_id = serializers.CharField(required=False, max_length=64)
    add_on_code = serializers.CharField(required=False, max_length=255)
    code = serializers.CharField(required=False, max_length=255)
    invoice_display_name = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=255)
    charge_model = serializers.ChoiceField(choices=fixed_charges.FIXED_CHARGE_MODELS, required=False)
    units = serializers.DecimalField(max_digits=30, decimal_places=10, required=False, coerce_to_string=False)
    pay_in_advance = serializers.BooleanField(required=False)
    prorated = serializers.BooleanField(required=False)
    properties = serializers.DictField(required=False)


def serialize_fixed_charge(row: fixed_charges.FixedCharge, *, units: Any = None) -> dict[str, Any]:
    """Lago's fixed_charge; `units` is a subscription's effective units (the plan's by default)."""
    value = row.units if units is None else units
    return {
        "lago_id": str(row.pk),
        "lago_add_on_id": str(row.add_on_id),
        "code": row.code,
        "invoice_display_name": row.invoice_display_name or row.add_on.invoice_display_name or row.add_on.name,
        "add_on_code": row.add_on.code,
        "created_at": iso(row.created_at),
        "charge_model": row.charge_model,
        "pay_in_advance": row.pay_in_advance,
        "prorated": row.prorated,
        "properties": row.properties,
        "units": float(value),  # Lago answers a number
        "lago_parent_id": None,
        "taxes": [],
    }


def _plan(code: str) -> Plan:
    plan = Plan.live.filter(code=code).first()
    if plan is None:
        raise NotFound("plan")
    return plan


class PlanFixedChargesView(APIView):
    resource_name = "fixed_charge"

    @extend_schema(
        operation_id="findAllPlanFixedCharges",
        parameters=[OpenApiParameter("page", int), OpenApiParameter("per_page", int)],
        responses={200: _OBJECT, 404: _ERROR},
    )
    def get(self, request: Request, code: str) -> Response:
        rows = fixed_charges.live_fixed_charges(_plan(code))
        return paginated(request, rows, "fixed_charges", serialize_fixed_charge)

    @extend_schema(
        operation_id="createPlanFixedCharge",
        request=inline_serializer("CreatePlanFixedChargeRequest", fields={"fixed_charge": FixedChargeInput()}),
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def post(self, request: Request, code: str) -> Response:
        plan = _plan(code)
        row = fixed_charges.fixed_charge_create(plan=plan, data=unwrap(request, "fixed_charge"))
        return Response({"fixed_charge": serialize_fixed_charge(row)})


class PlanFixedChargeView(APIView):
    resource_name = "fixed_charge"

    @extend_schema(operation_id="findPlanFixedCharge", responses={200: _OBJECT, 404: _ERROR})
    def get(self, request: Request, code: str, fixed_charge_code: str) -> Response:
        row = fixed_charges.fixed_charge_find(plan=_plan(code), code=fixed_charge_code)
        return Response({"fixed_charge": serialize_fixed_charge(row)})

    @extend_schema(
        operation_id="updatePlanFixedCharge",
        request=inline_serializer("UpdatePlanFixedChargeRequest", fields={"fixed_charge": FixedChargeInput()}),
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def put(self, request: Request, code: str, fixed_charge_code: str) -> Response:
        row = fixed_charges.fixed_charge_find(plan=_plan(code), code=fixed_charge_code)
        updated = fixed_charges.fixed_charge_update(fixed_charge=row, data=unwrap(request, "fixed_charge"))
        return Response({"fixed_charge": serialize_fixed_charge(updated)})

    @extend_schema(operation_id="destroyPlanFixedCharge", responses={200: _OBJECT, 404: _ERROR})
    def delete(self, request: Request, code: str, fixed_charge_code: str) -> Response:
        row = fixed_charges.fixed_charge_find(plan=_plan(code), code=fixed_charge_code)
        answer = serialize_fixed_charge(row)
        fixed_charges.fixed_charge_delete(fixed_charge=row)
        return Response({"fixed_charge": answer})


urlpatterns = [
    path("plans/<str:code>/fixed_charges", PlanFixedChargesView.as_view(), name="plan-fixed-charges"),
    path(
        "plans/<str:code>/fixed_charges/<str:fixed_charge_code>",
        PlanFixedChargeView.as_view(),
        name="plan-fixed-charge",
    ),
]
