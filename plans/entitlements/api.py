"""Lago's entitlement routes: /features, /plans/{code}/entitlements, /subscriptions/{id}/entitlements.
Thin: parse, call the services, answer Lago's shapes (app/controllers/api/v1/features_controller.rb,
plans/entitlements_controller.rb, subscriptions/entitlements_controller.rb)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import NotFound
from billing_project.api.views import paginated, unwrap
from plans.models import Plan, Subscription
from plans.subscriptions import live_subscription

from . import services
from .models import Feature

_OBJECT = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Lago's shape")
_ERROR = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Lago's error shape")


def _feature(code: str) -> Feature:
    feature = Feature.objects.filter(code=code).prefetch_related("privileges").first()
    if feature is None:
        raise NotFound("feature")
    return feature


def _feature_answer(feature: Feature) -> Response:
    return Response({"feature": services.serialize_feature(feature)})


def _body(request: Request, root: str) -> dict[str, Any]:
    data = request.data if isinstance(request.data, dict) else {}
    value = data.get(root)
    return value if isinstance(value, dict) else {}


class FeaturesView(APIView):
    resource_name = "feature"

    @extend_schema(
        operation_id="listFeatures",
        parameters=[OpenApiParameter("page", int), OpenApiParameter("per_page", int), OpenApiParameter("search_term")],
        responses={200: _OBJECT},
    )
    def get(self, request: Request) -> Response:
        features = Feature.objects.prefetch_related("privileges")
        term = request.query_params.get("search_term")
        if term:
            features = features.filter(
                Q(code__icontains=term) | Q(name__icontains=term) | Q(description__icontains=term)
            )
        return paginated(request, features, "features", services.serialize_feature)

    @extend_schema(operation_id="createFeature", request=OpenApiTypes.OBJECT, responses={200: _OBJECT, 422: _ERROR})
    def post(self, request: Request) -> Response:
        params = unwrap(request, "feature")
        feature = services.feature_create(
            code=params.get("code"),
            name=params.get("name"),
            description=params.get("description"),
            privileges=params.get("privileges"),
        )
        return _feature_answer(_feature(feature.code))


class FeatureView(APIView):
    resource_name = "feature"

    @extend_schema(operation_id="findFeature", responses={200: _OBJECT, 404: _ERROR})
    def get(self, request: Request, code: str) -> Response:
        return _feature_answer(_feature(code))

    @extend_schema(
        operation_id="updateFeature", request=OpenApiTypes.OBJECT, responses={200: _OBJECT, 404: _ERROR, 422: _ERROR}
    )
    def put(self, request: Request, code: str) -> Response:
        feature = services.feature_update(feature=_feature(code), changes=unwrap(request, "feature"))
        return _feature_answer(_feature(feature.code))

    @extend_schema(operation_id="patchFeature", request=OpenApiTypes.OBJECT, responses={200: _OBJECT, 404: _ERROR})
    def patch(self, request: Request, code: str) -> Response:
        return self.put(request, code)

    @extend_schema(operation_id="destroyFeature", responses={200: _OBJECT, 404: _ERROR})
    def delete(self, request: Request, code: str) -> Response:
        return _feature_answer(services.feature_delete(feature=_feature(code)))


class FeaturePrivilegeView(APIView):
    resource_name = "privilege"

    @extend_schema(operation_id="destroyFeaturePrivilege", responses={200: _OBJECT, 404: _ERROR})
    def delete(self, request: Request, code: str, privilege_code: str) -> Response:
        feature = services.privilege_delete(feature=_feature(code), code=privilege_code)
        return _feature_answer(_feature(feature.code))


def _plan(code: str) -> Plan:
    plan = Plan.live.filter(code=code).first()
    if plan is None:
        raise NotFound("plan")
    return plan


def _plan_entitlements(plan: Plan) -> Response:
    entitlements = services.plan_entitlements(plan=plan)
    return Response({"entitlements": [services.serialize_plan_entitlement(e) for e in entitlements]})


class PlanEntitlementsView(APIView):
    resource_name = "plan"

    @extend_schema(operation_id="listPlanEntitlements", responses={200: _OBJECT, 404: _ERROR})
    def get(self, request: Request, code: str) -> Response:
        return _plan_entitlements(_plan(code))

    @extend_schema(
        operation_id="createPlanEntitlements",
        request=OpenApiTypes.OBJECT,
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def post(self, request: Request, code: str) -> Response:
        plan = services.plan_entitlements_update(
            plan=_plan(code), entitlements=_body(request, "entitlements"), partial=False
        )
        return _plan_entitlements(plan)

    @extend_schema(
        operation_id="updatePlanEntitlements",
        request=OpenApiTypes.OBJECT,
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def patch(self, request: Request, code: str) -> Response:
        plan = services.plan_entitlements_update(
            plan=_plan(code), entitlements=_body(request, "entitlements"), partial=True
        )
        return _plan_entitlements(plan)


class PlanEntitlementView(APIView):
    resource_name = "entitlement"

    @extend_schema(operation_id="findPlanEntitlement", responses={200: _OBJECT, 404: _ERROR})
    def get(self, request: Request, code: str, feature_code: str) -> Response:
        entitlement = services.plan_entitlement(plan=_plan(code), feature_code=feature_code)
        return Response({"entitlement": services.serialize_plan_entitlement(entitlement)})

    @extend_schema(operation_id="destroyPlanEntitlement", responses={200: _OBJECT, 404: _ERROR})
    def delete(self, request: Request, code: str, feature_code: str) -> Response:
        entitlement = services.plan_entitlement_delete(plan=_plan(code), feature_code=feature_code)
        return Response({"entitlement": services.serialize_plan_entitlement(entitlement)})


class PlanEntitlementPrivilegeView(APIView):
    resource_name = "privilege"

    @extend_schema(operation_id="destroyPlanEntitlementPrivilege", responses={200: _OBJECT, 404: _ERROR})
    def delete(self, request: Request, code: str, feature_code: str, privilege_code: str) -> Response:
        entitlement = services.plan_entitlement_privilege_delete(
            plan=_plan(code), feature_code=feature_code, privilege_code=privilege_code
        )
        return Response({"entitlement": services.serialize_plan_entitlement(entitlement)})


def _subscription(request: Request, external_id: str) -> Subscription:
    status = request.query_params.get("subscription_status") or request.query_params.get("status")
    subscription = live_subscription(external_id, status or None)
    if subscription is None:
        raise NotFound("subscription")
    return subscription


def _subscription_entitlements(subscription: Subscription) -> Response:
    return Response({"entitlements": services.subscription_entitlements(subscription=subscription)})


class SubscriptionEntitlementsView(APIView):
    resource_name = "subscription"

    @extend_schema(operation_id="listSubscriptionEntitlements", responses={200: _OBJECT, 404: _ERROR})
    def get(self, request: Request, external_id: str) -> Response:
        return _subscription_entitlements(_subscription(request, external_id))

    @extend_schema(
        operation_id="updateSubscriptionEntitlements",
        request=OpenApiTypes.OBJECT,
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def patch(self, request: Request, external_id: str) -> Response:
        subscription = services.subscription_entitlements_update(
            subscription=_subscription(request, external_id), entitlements=_body(request, "entitlements")
        )
        return _subscription_entitlements(subscription)


class SubscriptionEntitlementView(APIView):
    resource_name = "feature"

    @extend_schema(operation_id="destroySubscriptionEntitlement", responses={200: _OBJECT, 404: _ERROR})
    def delete(self, request: Request, external_id: str, feature_code: str) -> Response:
        subscription = services.subscription_feature_remove(
            subscription=_subscription(request, external_id), feature_code=feature_code
        )
        return _subscription_entitlements(subscription)


class SubscriptionEntitlementPrivilegeView(APIView):
    resource_name = "privilege"

    @extend_schema(operation_id="destroySubscriptionEntitlementPrivilege", responses={200: _OBJECT, 404: _ERROR})
    def delete(self, request: Request, external_id: str, feature_code: str, privilege_code: str) -> Response:
        subscription = services.subscription_privilege_remove(
            subscription=_subscription(request, external_id), feature_code=feature_code, privilege_code=privilege_code
        )
        return _subscription_entitlements(subscription)


urlpatterns = [
    path("features", FeaturesView.as_view(), name="features"),
    path("features/<str:code>", FeatureView.as_view(), name="feature"),
    path(
        "features/<str:code>/privileges/<str:privilege_code>",
        FeaturePrivilegeView.as_view(),
        name="feature-privilege",
    ),
    path("plans/<str:code>/entitlements", PlanEntitlementsView.as_view(), name="plan-entitlements"),
    path("plans/<str:code>/entitlements/<str:feature_code>", PlanEntitlementView.as_view(), name="plan-entitlement"),
    path(
        "plans/<str:code>/entitlements/<str:feature_code>/privileges/<str:privilege_code>",
        PlanEntitlementPrivilegeView.as_view(),
        name="plan-entitlement-privilege",
    ),
    path(
        "subscriptions/<str:external_id>/entitlements",
        SubscriptionEntitlementsView.as_view(),
        name="subscription-entitlements",
    ),
    path(
        "subscriptions/<str:external_id>/entitlements/<str:feature_code>",
        SubscriptionEntitlementView.as_view(),
        name="subscription-entitlement",
    ),
    path(
        "subscriptions/<str:external_id>/entitlements/<str:feature_code>/privileges/<str:privilege_code>",
        SubscriptionEntitlementPrivilegeView.as_view(),
        name="subscription-entitlement-privilege",
    ),
]
