"""Catalog and subscriptions API in Lago's paths and shapes. Thin: parse, call the services,
render. plans.errors become Lago's error shape in billing_project.api.errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers as drf
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import NotFound, Unprocessable
from billing_project.api.views import paginated, unwrap
from customers.models import Customer

from .. import selectors, services
from ..models import AddOn, AppliedCoupon, Coupon, Plan, Subscription, SubscriptionStatus, Tax
from ..subscriptions import live_subscription
from . import serializers as s

_ERROR = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Lago's error shape")


def _envelope(name: str, root: str, fields: type[drf.Serializer] | None = None) -> Any:
    inner = fields() if fields is not None else drf.DictField()
    return inline_serializer(name, fields={root: inner})


def _doc(name: str, root: str, request: type[drf.Serializer] | None = None, **extra: Any) -> Callable:
    """Schema of one operation: the request envelope (if any) and an object answer."""
    return extend_schema(
        operation_id=name,
        request=_envelope(f"{name}Request", root, request) if request is not None else None,
        responses={200: _envelope(f"{name}Response", root), 404: _ERROR, 422: _ERROR},
        **extra,
    )


_PAGE = [OpenApiParameter("page", int), OpenApiParameter("per_page", int)]


def _customer(external_id: str | None) -> Customer:
    customer = Customer.live.filter(external_id=external_id or "").first() if external_id else None
    if customer is None:
        raise NotFound("customer")
    return customer


# --------------------------------------------------------------------------------------------
# Taxes


def _tax(code: str) -> Tax:
    tax = Tax.objects.filter(code=code).first()
    if tax is None:
        raise NotFound("tax")
    return tax


class TaxesView(APIView):
    resource_name = "tax"

    @_doc("createTax", "tax", s.TaxInput)
    def post(self, request: Request) -> Response:
        data = s.parse(s.TaxInput, unwrap(request, "tax"))
        tax = services.tax_create(
            code=data.get("code") or "",
            name=data.get("name") or "",
            rate=data.get("rate"),
            description=data.get("description") or "",
            applied_to_organization=bool(data.get("applied_to_organization")),
        )
        return Response({"tax": s.serialize_tax(tax)})

    @extend_schema(operation_id="findAllTaxes", parameters=_PAGE, responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return paginated(request, Tax.objects.order_by("code"), "taxes", s.serialize_tax)


class TaxView(APIView):
    resource_name = "tax"

    @_doc("findTax", "tax")
    def get(self, request: Request, code: str) -> Response:
        return Response({"tax": s.serialize_tax(_tax(code))})

    @_doc("updateTax", "tax", s.TaxInput)
    def put(self, request: Request, code: str) -> Response:
        tax = _tax(code)
        data = s.parse(s.TaxInput, unwrap(request, "tax"))
        return Response({"tax": s.serialize_tax(services.tax_update(tax=tax, **data))})

    @_doc("destroyTax", "tax")
    def delete(self, request: Request, code: str) -> Response:
        return Response({"tax": s.serialize_tax(services.tax_delete(tax=_tax(code)))})


# --------------------------------------------------------------------------------------------
# Plans


def _plan(code: str) -> Plan:
    plan = selectors.plans_with_charges().filter(code=code).first()
    if plan is None:
        raise NotFound("plan")
    return plan


def _plan_answer(plan: Plan) -> Response:
    return Response({"plan": s.serialize_plan(_plan(plan.code))})


class PlansView(APIView):
    resource_name = "plan"

    @_doc("createPlan", "plan", s.PlanInput)
    def post(self, request: Request) -> Response:
        data = s.parse(s.PlanInput, unwrap(request, "plan"))
        plan = services.plan_create(
            name=data.get("name") or "",
            code=data.get("code") or "",
            interval=data.get("interval") or "",
            amount_cents=data.get("amount_cents"),
            amount_currency=data.get("amount_currency") or "",
            description=data.get("description") or "",
            invoice_display_name=data.get("invoice_display_name") or "",
            pay_in_advance=bool(data.get("pay_in_advance")),
            trial_period=data.get("trial_period"),
            bill_charges_monthly=data.get("bill_charges_monthly"),
            tax_codes=data.get("tax_codes"),
            charges=data.get("charges") or [],
            metadata=data.get("metadata"),
        )
        return _plan_answer(plan)

    @extend_schema(operation_id="findAllPlans", parameters=_PAGE, responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return paginated(request, selectors.plans_with_charges(), "plans", s.serialize_plan)


class PlanView(APIView):
    resource_name = "plan"

    @_doc("findPlan", "plan")
    def get(self, request: Request, code: str) -> Response:
        return Response({"plan": s.serialize_plan(_plan(code))})

    @_doc("updatePlan", "plan", s.PlanInput)
    def put(self, request: Request, code: str) -> Response:
        plan = _plan(code)
        data = s.parse(s.PlanInput, unwrap(request, "plan"))
        if "charges" in data and data["charges"] is None:
            data["charges"] = []
        return _plan_answer(services.plan_update(plan=plan, **data))

    @_doc("destroyPlan", "plan")
    def delete(self, request: Request, code: str) -> Response:
        plan = _plan(code)
        answer = s.serialize_plan(plan)
        services.plan_delete(plan=plan)
        return Response({"plan": answer})


# --------------------------------------------------------------------------------------------
# Add-ons


def _add_on(code: str) -> AddOn:
    add_on = selectors.add_ons_with_taxes().filter(code=code).first()
    if add_on is None:
        raise NotFound("add_on")
    return add_on


class AddOnsView(APIView):
    resource_name = "add_on"

    @_doc("createAddOn", "add_on", s.AddOnInput)
    def post(self, request: Request) -> Response:
        data = s.parse(s.AddOnInput, unwrap(request, "add_on"))
        add_on = services.add_on_create(
            name=data.get("name") or "",
            code=data.get("code") or "",
            amount_cents=data.get("amount_cents"),
            amount_currency=data.get("amount_currency") or "",
            description=data.get("description") or "",
            invoice_display_name=data.get("invoice_display_name") or "",
            tax_codes=data.get("tax_codes"),
        )
        return Response({"add_on": s.serialize_add_on(add_on)})

    @extend_schema(operation_id="findAllAddOns", parameters=_PAGE, responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return paginated(request, selectors.add_ons_with_taxes(), "add_ons", s.serialize_add_on)


class AddOnView(APIView):
    resource_name = "add_on"

    @_doc("findAddOn", "add_on")
    def get(self, request: Request, code: str) -> Response:
        return Response({"add_on": s.serialize_add_on(_add_on(code))})

    @_doc("updateAddOn", "add_on", s.AddOnInput)
    def put(self, request: Request, code: str) -> Response:
        add_on = _add_on(code)
        data = s.parse(s.AddOnInput, unwrap(request, "add_on"))
        return Response({"add_on": s.serialize_add_on(services.add_on_update(add_on=add_on, **data))})

    @_doc("destroyAddOn", "add_on")
    def delete(self, request: Request, code: str) -> Response:
        return Response({"add_on": s.serialize_add_on(services.add_on_delete(add_on=_add_on(code)))})


# --------------------------------------------------------------------------------------------
# Coupons


def _coupon(code: str) -> Coupon:
    coupon = selectors.coupons_with_limits().filter(code=code).first()
    if coupon is None:
        raise NotFound("coupon")
    return coupon


def _coupon_arguments(data: dict[str, Any]) -> dict[str, Any]:
    applies_to = data.pop("applies_to", None) or {}
    return {
        **data,
        "plan_codes": applies_to.get("plan_codes"),
        "billable_metric_codes": applies_to.get("billable_metric_codes"),
    }


class CouponsView(APIView):
    resource_name = "coupon"

    @_doc("createCoupon", "coupon", s.CouponInput)
    def post(self, request: Request) -> Response:
        data = s.parse(s.CouponInput, unwrap(request, "coupon"))
        coupon = services.coupon_create(**_coupon_arguments(data))
        return Response({"coupon": s.serialize_coupon(coupon)})

    @extend_schema(operation_id="findAllCoupons", parameters=_PAGE, responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return paginated(request, selectors.coupons_with_limits(), "coupons", s.serialize_coupon)


class CouponView(APIView):
    resource_name = "coupon"

    @_doc("findCoupon", "coupon")
    def get(self, request: Request, code: str) -> Response:
        return Response({"coupon": s.serialize_coupon(_coupon(code))})

    @_doc("updateCoupon", "coupon", s.CouponInput)
    def put(self, request: Request, code: str) -> Response:
        coupon = _coupon(code)
        data = s.parse(s.CouponInput, unwrap(request, "coupon"))
        updated = services.coupon_update(coupon=coupon, **_coupon_arguments(data))
        return Response({"coupon": s.serialize_coupon(updated)})

    @_doc("destroyCoupon", "coupon")
    def delete(self, request: Request, code: str) -> Response:
        return Response({"coupon": s.serialize_coupon(services.coupon_delete(coupon=_coupon(code)))})


def _applied_coupons() -> Any:
    return AppliedCoupon.objects.select_related("coupon", "customer").order_by("-created_at", "id")


class AppliedCouponsView(APIView):
    resource_name = "applied_coupon"

    @_doc("applyCoupon", "applied_coupon", s.AppliedCouponInput)
    def post(self, request: Request) -> Response:
        data = s.parse(s.AppliedCouponInput, unwrap(request, "applied_coupon"))
        customer = _customer(data.pop("external_customer_id", None))
        coupon = Coupon.live.filter(code=data.pop("coupon_code", None) or "").first()
        if coupon is None:
            raise NotFound("coupon")
        applied = services.applied_coupon_create(customer=customer, coupon=coupon, **data)
        return Response({"applied_coupon": s.serialize_applied_coupon(_applied_coupons().get(pk=applied.pk))})

    @extend_schema(
        operation_id="findAllAppliedCoupons",
        parameters=[
            *_PAGE,
            OpenApiParameter("external_customer_id", str),
            OpenApiParameter("status", str, enum=["active", "terminated"]),
            OpenApiParameter("coupon_code[]", str, many=True),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        rows = _applied_coupons()
        params = request.query_params
        if params.get("external_customer_id"):
            rows = rows.filter(customer__external_id=params["external_customer_id"])
        if params.get("status"):
            rows = rows.filter(status=params["status"])
        codes = params.getlist("coupon_code[]") or params.getlist("coupon_code")
        if codes:
            rows = rows.filter(coupon__code__in=codes)
        return paginated(request, rows, "applied_coupons", s.serialize_applied_coupon)


class CustomerAppliedCouponView(APIView):
    resource_name = "applied_coupon"

    @_doc("deleteAppliedCoupon", "applied_coupon")
    def delete(self, request: Request, external_customer_id: str, applied_coupon_id: str) -> Response:
        customer = _customer(external_customer_id)
        try:
            applied = _applied_coupons().filter(customer=customer, pk=applied_coupon_id).first()
        except ValidationError:  # not a uuid: no such applied coupon
            applied = None
        if applied is None:
            raise NotFound("applied_coupon")
        services.applied_coupon_terminate(applied_coupon=applied)
        return Response({"applied_coupon": s.serialize_applied_coupon(_applied_coupons().get(pk=applied.pk))})


# --------------------------------------------------------------------------------------------
# Subscriptions


def _with_followers(rows: Any) -> Any:
    pending = Subscription.objects.filter(status=SubscriptionStatus.PENDING).select_related("plan")
    return rows.prefetch_related(Prefetch("next_subscriptions", queryset=pending, to_attr="pending_next"))


def _subscription(external_id: str, status: str | None) -> Subscription:
    if status and status not in SubscriptionStatus.values:
        raise Unprocessable({"status": ["value_is_invalid"]})
    subscription = live_subscription(external_id, status)
    if subscription is None:
        raise NotFound("subscription")
    return subscription


def _subscription_answer(subscription: Subscription) -> Response:
    fresh = _with_followers(Subscription.objects.select_related("customer", "plan", "previous_subscription__plan")).get(
        pk=subscription.pk
    )
    return Response({"subscription": s.serialize_subscription(fresh, include_plan=True)})


_STATUS = OpenApiParameter("status", str, enum=SubscriptionStatus.values)


class SubscriptionsView(APIView):
    resource_name = "subscription"

    @_doc("createSubscription", "subscription", s.SubscriptionInput)
    def post(self, request: Request) -> Response:
        data = s.parse(s.SubscriptionInput, unwrap(request, "subscription"))
        errors = {key: ["value_is_mandatory"] for key in ("external_customer_id", "plan_code") if not data.get(key)}
        if errors:
            raise Unprocessable(errors)
        customer = _customer(data["external_customer_id"])
        plan = Plan.live.filter(code=data["plan_code"]).first()
        if plan is None:
            raise NotFound("plan")
        subscription = services.subscription_create(
            customer=customer,
            plan=plan,
            external_id=data.get("external_id") or "",
            name=data.get("name") or "",
            billing_time=data.get("billing_time"),
            subscription_at=data.get("subscription_at"),
            ending_at=data.get("ending_at"),
            plan_overrides=data.get("plan_overrides"),
        )
        return _subscription_answer(subscription)

    @extend_schema(
        operation_id="findAllSubscriptions",
        parameters=[
            *_PAGE,
            OpenApiParameter("external_customer_id", str),
            OpenApiParameter("plan_code", str),
            OpenApiParameter("status[]", str, many=True, enum=SubscriptionStatus.values),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        statuses = params.getlist("status[]") or params.getlist("status")
        if any(status not in SubscriptionStatus.values for status in statuses):
            raise Unprocessable({"status": ["value_is_invalid"]})
        rows = selectors.subscriptions_list(
            external_customer_id=params.get("external_customer_id") or None,
            plan_code=params.get("plan_code") or None,
            statuses=statuses,
        )
        return paginated(request, _with_followers(rows), "subscriptions", s.serialize_subscriptions, many=True)


class SubscriptionView(APIView):
    resource_name = "subscription"

    @_doc("findSubscription", "subscription", parameters=[_STATUS])
    def get(self, request: Request, external_id: str) -> Response:
        return _subscription_answer(_subscription(external_id, request.query_params.get("status")))

    @_doc("updateSubscription", "subscription", s.SubscriptionInput, parameters=[_STATUS])
    def put(self, request: Request, external_id: str) -> Response:
        subscription = _subscription(external_id, request.query_params.get("status"))
        data = s.parse(s.SubscriptionInput, unwrap(request, "subscription"))
        # Only the keys sent: an explicit null ending_at clears it, an absent one keeps it.
        keys = ("name", "subscription_at", "ending_at", "plan_overrides")
        arguments = {key: data[key] for key in keys if key in data}
        updated = services.subscription_update(subscription=subscription, **arguments)
        return _subscription_answer(updated)

    @_doc("destroySubscription", "subscription", parameters=[_STATUS])
    def delete(self, request: Request, external_id: str) -> Response:
        status = request.query_params.get("status") or SubscriptionStatus.ACTIVE
        if status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING):
            raise Unprocessable({"status": ["value_is_invalid"]})
        subscription = live_subscription(external_id, status)
        if subscription is None:
            raise NotFound("subscription")
        return _subscription_answer(services.subscription_terminate(subscription=subscription))
