"""Lago's /subscriptions/{external_id}/fixed_charges[/{code}] (index, show, update): the plan's
fixed charges with the subscription's units, and a change of units, taking effect now
(`apply_units_immediately`, the default here) or at the next billing period. An increase on a
prorated in-advance charge is billed at once for the days left (invoicing.fixed_charges)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import NotFound, Unprocessable
from billing_project.api.views import paginated, unwrap
from customers.locks import lock_customer
from plans import fixed_charges as plan_fixed_charges
from plans import periods
from plans.api.fixed_charges import serialize_fixed_charge
from plans.models import Subscription, SubscriptionStatus
from plans.subscriptions import live_subscription

from .. import fixed_charges

_OBJECT = OpenApiResponse(response=OpenApiTypes.OBJECT)
_ERROR = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Lago's error shape")


class SubscriptionFixedChargeInput(serializers.Serializer):
    units = serializers.DecimalField(max_digits=30, decimal_places=10, coerce_to_string=False)
    apply_units_immediately = serializers.BooleanField(required=False)


def _subscription(external_id: str) -> Subscription:
    subscription = live_subscription(external_id)
    if subscription is None or subscription.status != SubscriptionStatus.ACTIVE:
        raise NotFound("subscription")
    return subscription


def _find(subscription: Subscription, code: str) -> plan_fixed_charges.FixedCharge:
    row = plan_fixed_charges.subscription_fixed_charges(subscription).filter(code=code).first()
    if row is None:
        raise NotFound("fixed_charge")
    return row


def _answer(subscription: Subscription, row: plan_fixed_charges.FixedCharge) -> dict[str, Any]:
    units = plan_fixed_charges.units_at(subscription, row, timezone.now())
    return serialize_fixed_charge(row, units=units)


class SubscriptionFixedChargesView(APIView):
    resource_name = "fixed_charge"

    @extend_schema(operation_id="findAllSubscriptionFixedCharges", responses={200: _OBJECT, 404: _ERROR})
    def get(self, request: Request, external_id: str) -> Response:
        subscription = _subscription(external_id)
        rows = plan_fixed_charges.subscription_fixed_charges(subscription)
        return paginated(request, rows, "fixed_charges", lambda row: _answer(subscription, row))


class SubscriptionFixedChargeView(APIView):
    resource_name = "fixed_charge"

    @extend_schema(operation_id="findSubscriptionFixedCharge", responses={200: _OBJECT, 404: _ERROR})
    def get(self, request: Request, external_id: str, code: str) -> Response:
        subscription = _subscription(external_id)
        row = _find(subscription, code)
        return Response({"fixed_charge": _answer(subscription, row)})

    @extend_schema(
        operation_id="updateSubscriptionFixedCharge",
        request=inline_serializer(
            "UpdateSubscriptionFixedChargeRequest", fields={"fixed_charge": SubscriptionFixedChargeInput()}
        ),
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def put(self, request: Request, external_id: str, code: str) -> Response:
        subscription = _subscription(external_id)
        row = _find(subscription, code)
        data = unwrap(request, "fixed_charge")
        if data.get("units") is None:
            raise Unprocessable({"units": ["value_is_mandatory"]})
        subscription_fixed_charge_units_change(
            subscription=subscription,
            fixed_charge=row,
            units=data["units"],
            immediately=data.get("apply_units_immediately") is not False,
        )
        return Response({"fixed_charge": _answer(subscription, row)})


def subscription_fixed_charge_units_change(
    *, subscription: Subscription, fixed_charge: plan_fixed_charges.FixedCharge, units: Any, immediately: bool
) -> None:
    """One transaction, the customer locked: the units row, and the invoice of an increase."""
    now = timezone.now()
    with transaction.atomic():
        lock_customer(subscription.customer)
        effective_at = now if immediately else periods.subscription_period(subscription, now).to_datetime
        previous = plan_fixed_charges.units_at(subscription, fixed_charge, effective_at)
        change = plan_fixed_charges.subscription_fixed_charge_units_set(
            subscription=subscription, fixed_charge=fixed_charge, units=units, effective_at=effective_at
        )
        if immediately:
            fixed_charges.units_change_invoice(
                subscription=subscription, change=change, previous_units=previous, now=now
            )


urlpatterns = [
    path(
        "subscriptions/<str:external_id>/fixed_charges",
        SubscriptionFixedChargesView.as_view(),
        name="subscription-fixed-charges",
    ),
    path(
        "subscriptions/<str:external_id>/fixed_charges/<str:code>",
        SubscriptionFixedChargeView.as_view(),
        name="subscription-fixed-charge",
    ),
]
