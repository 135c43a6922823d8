"""Charges by code in Lago's paths: /plans/{code}/charges[/{charge_code}] and their filters, a
subscription's charges (/subscriptions/{external_id}/charges[/{code}]) and their filters, and plan
metadata.
Thin: parse, call plans.charge_edits / plans.overrides / plans.services, render."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.metadata import metadata_views
from billing_project.api.views import paginated, unwrap

from .. import charge_edits, override_filters, selectors, services
from ..models import Charge, ChargeFilter, Plan
from . import serializers as s
from .views import _PAGE, _doc, _plan, _subscription

_ERROR = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Lago's error shape")


def _charges(plan: Plan) -> Any:
    return selectors.live_charges().filter(plan=plan)


def _charge(plan: Plan, code: str) -> Charge:
    charge_edits.live_charge(plan, code)  # 404 charge_not_found
    return _charges(plan).get(code=code)


def _charge_answer(charge: Charge) -> Response:
    fresh = selectors.live_charges().filter(pk=charge.pk).first() or charge
    return Response({"charge": s.serialize_charge(fresh, str(fresh.plan.amount.currency))})


def _cascade(data: dict[str, Any]) -> bool | None:
    return data.pop("cascade_updates", None)


class PlanChargesView(APIView):
    resource_name = "plan"

    @extend_schema(operation_id="findAllPlanCharges", parameters=_PAGE, responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, code: str) -> Response:
        plan = _plan(code)
        currency = str(plan.amount.currency)
        return paginated(request, _charges(plan), "charges", lambda c: s.serialize_charge(c, currency))

    @_doc("createPlanCharge", "charge", s.ChargeInput)
    def post(self, request: Request, code: str) -> Response:
        plan = _plan(code)
        data = s.parse(s.ChargeInput, unwrap(request, "charge"))
        cascade = _cascade(data)
        return _charge_answer(charge_edits.plan_charge_create(plan=plan, spec=data, cascade_updates=cascade))


class PlanChargeView(APIView):
    resource_name = "charge"

    @_doc("findPlanCharge", "charge")
    def get(self, request: Request, code: str, charge_code: str) -> Response:
        return _charge_answer(_charge(_plan(code), charge_code))

    @_doc("updatePlanCharge", "charge", s.ChargeInput)
    def put(self, request: Request, code: str, charge_code: str) -> Response:
        charge = _charge(_plan(code), charge_code)
        data = s.parse(s.ChargeInput, unwrap(request, "charge"))
        cascade = _cascade(data)
        return _charge_answer(charge_edits.plan_charge_update(charge=charge, changes=data, cascade_updates=cascade))

    @_doc("destroyPlanCharge", "charge")
    def delete(self, request: Request, code: str, charge_code: str) -> Response:
        charge = _charge(_plan(code), charge_code)
        answer = s.serialize_charge(charge, str(charge.plan.amount.currency))
        cascade = None
        if isinstance(request.data, dict) and isinstance(request.data.get("charge"), dict):
            cascade = s.parse(s.ChargeInput, request.data["charge"]).get("cascade_updates")
        charge_edits.plan_charge_delete(charge=charge, cascade_updates=cascade)
        return Response({"charge": answer})


# --------------------------------------------------------------------------------------------
# Filters of a plan's charge


def _filter(charge: Charge, filter_id: str) -> ChargeFilter:
    return charge_edits.live_filter(charge, filter_id)


def _filter_answer(charge_filter: ChargeFilter) -> Response:
    return Response({"filter": s.serialize_charge_filter(charge_filter)})


class PlanChargeFiltersView(APIView):
    resource_name = "charge"

    @extend_schema(operation_id="findAllPlanChargeFilters", parameters=_PAGE, responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, code: str, charge_code: str) -> Response:
        charge = _charge(_plan(code), charge_code)
        rows = charge.filters.filter(deleted_at__isnull=True).order_by("created_at", "id")
        return paginated(request, rows, "filters", lambda f: s.serialize_charge_filter(f, charge.code))

    @_doc("createPlanChargeFilter", "filter", s.ChargeFilterInput)
    def post(self, request: Request, code: str, charge_code: str) -> Response:
        charge = _charge(_plan(code), charge_code)
        data = s.parse(s.ChargeFilterInput, unwrap(request, "filter"))
        cascade = _cascade(data)
        return _filter_answer(charge_edits.charge_filter_create(charge=charge, data=data, cascade_updates=cascade))


class PlanChargeFilterView(APIView):
    resource_name = "charge_filter"

    @_doc("findPlanChargeFilter", "filter")
    def get(self, request: Request, code: str, charge_code: str, filter_id: str) -> Response:
        return _filter_answer(_filter(_charge(_plan(code), charge_code), filter_id))

    @_doc("updatePlanChargeFilter", "filter", s.ChargeFilterInput)
    def put(self, request: Request, code: str, charge_code: str, filter_id: str) -> Response:
        charge_filter = _filter(_charge(_plan(code), charge_code), filter_id)
        data = s.parse(s.ChargeFilterInput, unwrap(request, "filter"))
        cascade = _cascade(data)
        updated = charge_edits.charge_filter_update(charge_filter=charge_filter, data=data, cascade_updates=cascade)
        return _filter_answer(updated)

    @_doc("destroyPlanChargeFilter", "filter")
    def delete(self, request: Request, code: str, charge_code: str, filter_id: str) -> Response:
        charge_filter = _filter(_charge(_plan(code), charge_code), filter_id)
        return _filter_answer(charge_edits.charge_filter_delete(charge_filter=charge_filter))


# --------------------------------------------------------------------------------------------
# A subscription's charges (its plan's, or its override's)


class SubscriptionChargesView(APIView):
    resource_name = "subscription"

    @extend_schema(operation_id="findAllSubscriptionCharges", parameters=_PAGE, responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, external_id: str) -> Response:
        subscription = _subscription(external_id, None)
        currency = str(subscription.plan.amount.currency)
        rows = _charges(subscription.plan)
        return paginated(request, rows, "charges", lambda c: s.serialize_charge(c, currency))


class SubscriptionChargeView(APIView):
    resource_name = "charge"

    @_doc("findSubscriptionCharge", "charge")
    def get(self, request: Request, external_id: str, code: str) -> Response:
        subscription = _subscription(external_id, None)
        return _charge_answer(_charge(subscription.plan, code))

    @_doc("updateSubscriptionCharge", "charge", s.ChargeOverrideInput)
    def put(self, request: Request, external_id: str, code: str) -> Response:
        subscription = _subscription(external_id, None)
        data = s.parse(s.ChargeOverrideInput, unwrap(request, "charge"))
        charge = services.subscription_charge_update(subscription=subscription, charge_code=code, changes=data)
        return _charge_answer(charge)


# --------------------------------------------------------------------------------------------
# Filters of a subscription's charge (an edit makes the subscription's override first)


def _status(request: Request) -> str | None:
    return request.query_params.get("subscription_status") or None


class SubscriptionChargeFiltersView(APIView):
    resource_name = "charge"

    @extend_schema(
        operation_id="findAllSubscriptionChargeFilters", parameters=_PAGE, responses={200: OpenApiTypes.OBJECT}
    )
    def get(self, request: Request, external_id: str, code: str) -> Response:
        subscription = _subscription(external_id, _status(request))
        rows = override_filters.subscription_charge_filters(subscription, code)
        return paginated(request, rows, "filters", lambda f: s.serialize_charge_filter(f, code))

    @_doc("createSubscriptionChargeFilter", "filter", s.ChargeFilterInput)
    def post(self, request: Request, external_id: str, code: str) -> Response:
        subscription = _subscription(external_id, _status(request))
        data = s.parse(s.ChargeFilterInput, unwrap(request, "filter"))
        data.pop("cascade_updates", None)  # a subscription's own terms reach no one else
        created = override_filters.subscription_charge_filter_create(
            subscription=subscription, charge_code=code, data=data
        )
        return _filter_answer(created)


class SubscriptionChargeFilterView(APIView):
    resource_name = "charge_filter"

    @_doc("findSubscriptionChargeFilter", "filter")
    def get(self, request: Request, external_id: str, code: str, filter_id: str) -> Response:
        subscription = _subscription(external_id, _status(request))
        return _filter_answer(override_filters.subscription_charge_filter(subscription, code, filter_id))

    @_doc("updateSubscriptionChargeFilter", "filter", s.ChargeFilterInput)
    def put(self, request: Request, external_id: str, code: str, filter_id: str) -> Response:
        subscription = _subscription(external_id, _status(request))
        data = s.parse(s.ChargeFilterInput, unwrap(request, "filter"))
        data.pop("cascade_updates", None)
        updated = override_filters.subscription_charge_filter_update(
            subscription=subscription, charge_code=code, filter_id=filter_id, data=data
        )
        return _filter_answer(updated)

    @_doc("destroySubscriptionChargeFilter", "filter")
    def delete(self, request: Request, external_id: str, code: str, filter_id: str) -> Response:
        subscription = _subscription(external_id, _status(request))
        deleted = override_filters.subscription_charge_filter_delete(
            subscription=subscription, charge_code=code, filter_id=filter_id
        )
        return _filter_answer(deleted)


# --------------------------------------------------------------------------------------------
# Plan metadata


def _set_plan_metadata(plan: Plan, metadata: Any, merge: bool) -> Any:
    return services.plan_metadata_set(plan=plan, metadata=metadata, merge=merge).metadata


def _delete_plan_metadata(plan: Plan, key: str | None) -> Any:
    return services.plan_metadata_delete(plan=plan, key=key).metadata


PlanMetadataView, PlanMetadataKeyView = metadata_views(
    prefix="Plan",
    resource_name="plan",
    find=lambda code: _plan(code),
    set_metadata=_set_plan_metadata,
    delete_metadata=_delete_plan_metadata,
)
