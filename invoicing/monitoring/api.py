"""Lago's /subscriptions/{external_id}/alerts and /customers/{external_id}/wallets/{code}/alerts
routes (index, create one or a batch, show, update, destroy, destroy all; Lago's
app/controllers/api/v1/subscriptions/alerts_controller.rb and customers/wallets/alerts_controller.rb)
and the alert and triggered-alert objects (Lago's V1::UsageMonitoring::AlertSerializer and
TriggeredAlertSerializer). Thin: invoicing.monitoring.alerts."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import NotFound, Unprocessable
from billing_project.api.views import paginated, unwrap
from customers.models import Customer, Organization
from metrics.api.serializers import serialize_billable_metric
from plans.api.serializers import iso
from plans.models import Subscription, SubscriptionStatus
from plans.subscriptions import live_subscription

from ..wallets.models import Wallet
from . import alerts
from .evaluation import _text
from .models import SUBSCRIPTION_ALERT_TYPES, WALLET_ALERT_TYPES, Alert, TriggeredAlert

_OBJECT = OpenApiResponse(response=OpenApiTypes.OBJECT)
_ERROR = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Lago's error shape")
_STATUS = OpenApiParameter("subscription_status", str, enum=SubscriptionStatus.values)


class ThresholdInput(serializers.Serializer):
    code = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=255)
    value = serializers.CharField(max_length=40)
    recurring = serializers.BooleanField(required=False)


class AlertInput(serializers.Serializer):
    alert_type = serializers.ChoiceField(choices=[t.value for t in SUBSCRIPTION_ALERT_TYPES])
    code = serializers.CharField(max_length=255)
    name = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=255)
    billable_metric_code = serializers.CharField(required=False, allow_null=True, max_length=255)
    thresholds = ThresholdInput(many=True)


def serialize_alert(alert: Alert) -> dict[str, Any]:
    organization = Organization.current()
    return {
        "lago_id": str(alert.pk),
        "lago_organization_id": str(organization.pk),
        "subscription_external_id": alert.external_subscription_id,  # Lago's deprecated twin
        "external_subscription_id": alert.external_subscription_id,
        "lago_wallet_id": str(alert.wallet_id) if alert.wallet_id else None,
        "wallet_code": alert.wallet.code if alert.wallet is not None else None,
        "alert_type": alert.alert_type,
        "code": alert.code,
        "name": alert.name or None,
        "direction": alert.direction,
        "previous_value": _text(alert.previous_value),
        "last_processed_at": iso(alert.last_processed_at),
        "thresholds": [
            {"code": row.code or None, "value": _text(row.value), "recurring": row.recurring}
            for row in alert.thresholds.all()
        ],
        "created_at": iso(alert.created_at),
        "billable_metric": serialize_billable_metric(alert.billable_metric) if alert.billable_metric else None,
    }


def serialize_triggered_alert(row: TriggeredAlert) -> dict[str, Any]:
    alert = row.alert
    owner = row.subscription if row.subscription_id else row.wallet
    customer_id = owner.customer.external_id if owner is not None else None
    return {
        "lago_id": str(row.pk),
        "lago_organization_id": str(Organization.current().pk),
        "lago_alert_id": str(alert.pk),
        "lago_subscription_id": str(row.subscription_id) if row.subscription_id else None,
        "external_subscription_id": alert.external_subscription_id,
        "lago_wallet_id": str(row.wallet_id) if row.wallet_id else None,
        "external_customer_id": customer_id,
        "billable_metric_code": alert.billable_metric.code if alert.billable_metric else None,
        "alert_name": alert.name or None,
        "alert_code": alert.code,
        "alert_type": alert.alert_type,
        "current_value": _text(row.current_value),
        "previous_value": _text(row.previous_value),
        "crossed_thresholds": row.crossed_thresholds,
        "triggered_at": iso(row.triggered_at),
        "subscription_external_id": alert.external_subscription_id,  # Lago's deprecated twins
        "customer_external_id": customer_id,
    }


def triggered_alert_payload(triggered_alert_id: Any) -> dict[str, Any]:
    """The webhook's object (webhooks.events)."""
    row = TriggeredAlert.objects.select_related(
        "alert__billable_metric", "subscription__customer", "wallet__customer"
    ).get(pk=triggered_alert_id)
    return serialize_triggered_alert(row)


def _subscription(request: Request, external_id: str) -> Subscription:
    status = request.query_params.get("subscription_status")
    if status and status not in SubscriptionStatus.values:
        raise Unprocessable({"subscription_status": ["value_is_invalid"]})
    subscription = live_subscription(external_id, status)
    if subscription is None:
        raise NotFound("subscription")
    return subscription


def _alert_answer(alert: Alert) -> Response:
    fresh = alerts.live_alerts(alert.external_subscription_id, wallet=alert.wallet).filter(pk=alert.pk).first()
    return Response({"alert": serialize_alert(fresh or alert)})


class AlertsView(APIView):
    resource_name = "alert"

    @extend_schema(
        operation_id="findAllSubscriptionAlerts",
        parameters=[_STATUS, OpenApiParameter("page", int), OpenApiParameter("per_page", int)],
        responses={200: _OBJECT, 404: _ERROR},
    )
    def get(self, request: Request, external_id: str) -> Response:
        subscription = _subscription(request, external_id)
        rows = alerts.live_alerts(subscription.external_id).order_by("created_at", "id")
        return paginated(request, rows, "alerts", serialize_alert)

    @extend_schema(
        operation_id="createSubscriptionAlert",
        description='One alert (`{"alert": {...}}`) or a batch (`{"alerts": [...]}`, all or none).',
        parameters=[_STATUS],
        request=inline_serializer(
            "CreateSubscriptionAlertRequest",
            fields={"alert": AlertInput(required=False), "alerts": AlertInput(many=True, required=False)},
        ),
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def post(self, request: Request, external_id: str) -> Response:
        subscription = _subscription(request, external_id)
        data = request.data
        if isinstance(data, dict) and isinstance(data.get("alerts"), list) and data["alerts"]:
            created = alerts.alerts_create(subscription=subscription, items=data["alerts"])
            fresh = {
                row.pk: row
                for row in alerts.live_alerts(subscription.external_id).filter(pk__in=[a.pk for a in created])
            }
            return Response({"alerts": [serialize_alert(fresh.get(row.pk, row)) for row in created]})
        return _alert_answer(alerts.alert_create(subscription=subscription, data=unwrap(request, "alert")))

    @extend_schema(
        operation_id="destroyAllSubscriptionAlerts", parameters=[_STATUS], responses={200: _OBJECT, 404: _ERROR}
    )
    def delete(self, request: Request, external_id: str) -> Response:
        subscription = _subscription(request, external_id)
        alerts.alerts_delete_all(subscription=subscription)
        return Response({})


class AlertView(APIView):
    resource_name = "alert"

    @extend_schema(operation_id="findSubscriptionAlert", parameters=[_STATUS], responses={200: _OBJECT, 404: _ERROR})
    def get(self, request: Request, external_id: str, code: str) -> Response:
        subscription = _subscription(request, external_id)
        return Response(
            {"alert": serialize_alert(alerts.alert_find(external_subscription_id=subscription.external_id, code=code))}
        )

    @extend_schema(
        operation_id="updateSubscriptionAlert",
        parameters=[_STATUS],
        request=inline_serializer("UpdateSubscriptionAlertRequest", fields={"alert": AlertInput(partial=True)}),
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def put(self, request: Request, external_id: str, code: str) -> Response:
        subscription = _subscription(request, external_id)
        alert = alerts.alert_find(external_subscription_id=subscription.external_id, code=code)
        data = unwrap(request, "alert")
        with transaction.atomic():
            updated = alerts.alert_update(alert=alert, subscription=subscription, data=data)
        return _alert_answer(updated)

    @extend_schema(operation_id="destroySubscriptionAlert", parameters=[_STATUS], responses={200: _OBJECT, 404: _ERROR})
    def delete(self, request: Request, external_id: str, code: str) -> Response:
        subscription = _subscription(request, external_id)
        alert = alerts.alert_find(external_subscription_id=subscription.external_id, code=code)
        answer = serialize_alert(alert)
        alerts.alert_delete(alert=alert)
        return Response({"alert": answer})


def _wallet(external_id: str, code: str) -> Wallet:
    """Lago's Customers::Wallets::BaseController: customer_not_found, then wallet_not_found."""
    customer = Customer.live.filter(external_id=external_id).first()
    if customer is None:
        raise NotFound("customer")
    wallet = Wallet.objects.select_related("customer").filter(customer=customer, code=code).first()
    if wallet is None:
        raise NotFound("wallet")
    return wallet


class WalletAlertInput(serializers.Serializer):
    alert_type = serializers.ChoiceField(choices=[t.value for t in WALLET_ALERT_TYPES])
    code = serializers.CharField(max_length=255)
    name = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=255)
    thresholds = ThresholdInput(many=True)


class WalletAlertsView(APIView):
    resource_name = "alert"

    @extend_schema(
        operation_id="findAllWalletAlerts",
        parameters=[OpenApiParameter("page", int), OpenApiParameter("per_page", int)],
        responses={200: _OBJECT, 404: _ERROR},
    )
    def get(self, request: Request, external_id: str, code: str) -> Response:
        wallet = _wallet(external_id, code)
        return paginated(
            request, alerts.live_alerts(wallet=wallet).order_by("created_at", "id"), "alerts", serialize_alert
        )

    @extend_schema(
        operation_id="createWalletAlert",
        description='One alert (`{"alert": {...}}`) or a batch (`{"alerts": [...]}`, all or none). Wallet types '
        "only; a wallet alert is decreasing and fires when the value falls to or below a threshold.",
        request=inline_serializer(
            "CreateWalletAlertRequest",
            fields={"alert": WalletAlertInput(required=False), "alerts": WalletAlertInput(many=True, required=False)},
        ),
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def post(self, request: Request, external_id: str, code: str) -> Response:
        wallet = _wallet(external_id, code)
        data = request.data
        if isinstance(data, dict) and isinstance(data.get("alerts"), list) and data["alerts"]:
            created = alerts.alerts_create(wallet=wallet, items=data["alerts"])
            fresh = {row.pk: row for row in alerts.live_alerts(wallet=wallet).filter(pk__in=[a.pk for a in created])}
            return Response({"alerts": [serialize_alert(fresh.get(row.pk, row)) for row in created]})
        return _alert_answer(alerts.alert_create(wallet=wallet, data=unwrap(request, "alert")))

    @extend_schema(operation_id="destroyAllWalletAlerts", responses={200: _OBJECT, 404: _ERROR})
    def delete(self, request: Request, external_id: str, code: str) -> Response:
        alerts.alerts_delete_all(wallet=_wallet(external_id, code))
        return Response({})


class WalletAlertView(APIView):
    resource_name = "alert"

    @extend_schema(operation_id="findWalletAlert", responses={200: _OBJECT, 404: _ERROR})
    def get(self, request: Request, external_id: str, code: str, alert_code: str) -> Response:
        wallet = _wallet(external_id, code)
        return Response({"alert": serialize_alert(alerts.alert_find(wallet=wallet, code=alert_code))})

    @extend_schema(
        operation_id="updateWalletAlert",
        request=inline_serializer("UpdateWalletAlertRequest", fields={"alert": WalletAlertInput(partial=True)}),
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def put(self, request: Request, external_id: str, code: str, alert_code: str) -> Response:
        wallet = _wallet(external_id, code)
        alert = alerts.alert_find(wallet=wallet, code=alert_code)
        data = unwrap(request, "alert")
        with transaction.atomic():
            updated = alerts.alert_update(alert=alert, wallet=wallet, data=data)
        return _alert_answer(updated)

    @extend_schema(operation_id="destroyWalletAlert", responses={200: _OBJECT, 404: _ERROR})
    def delete(self, request: Request, external_id: str, code: str, alert_code: str) -> Response:
        alert = alerts.alert_find(wallet=_wallet(external_id, code), code=alert_code)
        answer = serialize_alert(alert)
        alerts.alert_delete(alert=alert)
        return Response({"alert": answer})


urlpatterns = [
    path("subscriptions/<str:external_id>/alerts", AlertsView.as_view(), name="subscription-alerts"),
    path("subscriptions/<str:external_id>/alerts/<str:code>", AlertView.as_view(), name="subscription-alert"),
    path("customers/<str:external_id>/wallets/<str:code>/alerts", WalletAlertsView.as_view(), name="wallet-alerts"),
    path(
        "customers/<str:external_id>/wallets/<str:code>/alerts/<str:alert_code>",
        WalletAlertView.as_view(),
        name="wallet-alert",
    ),
]
