"""POST /invoices/preview (Lago's shape: top-level `customer`, `plan_code`, `billing_time`,
`subscription_at`, `subscriptions.external_ids`). Thin: parse, find, call invoicing.preview."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing_project.api.errors import BadRequest, NotFound, Unprocessable
from customers.models import Customer
from plans.models import BillingTime, Plan, Subscription, SubscriptionStatus

from .. import preview
from ..models import Invoice
from . import queries
from . import serializers as s
from .views import _ERROR, _OBJECT, InvoicingView, _base_url


class PreviewCustomerInput(serializers.Serializer):
    external_id = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=255)
    name = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=255)
    currency = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=3)
    timezone = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=64)
    tax_identification_number = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=255)
    address_line1 = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=255)
    address_line2 = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=255)
    city = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=255)
    zipcode = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=32)
    state = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=255)
    country = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=2)


class PreviewSubscriptionsInput(serializers.Serializer):
    external_ids = serializers.ListField(
        child=serializers.CharField(max_length=255), min_length=1, max_length=1, required=True
    )


class InvoicePreviewInput(serializers.Serializer):
    customer = PreviewCustomerInput()
    plan_code = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=255)
    billing_time = serializers.ChoiceField(choices=BillingTime.values, required=False, allow_null=True)
    subscription_at = serializers.DateTimeField(required=False, allow_null=True)
    subscriptions = PreviewSubscriptionsInput(required=False, allow_null=True)
    coupons = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True, max_length=0)


class InvoicePreviewView(InvoicingView):
    @extend_schema(
        operation_id="previewInvoice",
        description=(
            "The invoice a subscription would get now (`subscriptions.external_ids`: one id), or a "
            "plan's first invoice for a customer (`plan_code`), computed by the billing pipeline in "
            "a transaction that rolls back: nothing is stored. Ad-hoc `coupons` are not supported."
        ),
        request=InvoicePreviewInput,
        responses={200: _OBJECT, 400: _ERROR, 404: _ERROR, 422: _ERROR},
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise BadRequest("param is missing or the value is empty: customer")
        if request.data.get("coupons") not in (None, []) and not isinstance(request.data.get("coupons"), list):
            raise BadRequest("coupons_must_be_an_array")
        serializer = InvoicePreviewInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        customer_fields: dict[str, Any] = dict(data["customer"])
        external_id = customer_fields.get("external_id") or ""
        customer = Customer.live.filter(external_id=external_id).first() if external_id else None
        base_url = _base_url(request)

        def render(invoice: Invoice) -> dict[str, Any]:
            fresh = queries.invoices_in_full().get(pk=invoice.pk)
            return s.serialize_invoice(fresh, s.InvoiceContext(base_url), full=True)

        subscriptions = data.get("subscriptions")
        if subscriptions:
            if customer is None:
                raise NotFound("customer")
            subscription = Subscription.objects.filter(
                customer=customer, external_id=subscriptions["external_ids"][0], status=SubscriptionStatus.ACTIVE
            ).first()
            if subscription is None:
                raise NotFound("subscription")
            answer = preview.invoice_preview_for_subscription(subscription=subscription, render=render)
        elif data.get("plan_code"):
            plan = Plan.live.filter(code=data["plan_code"]).first()
            if plan is None:
                raise NotFound("plan")
            answer = preview.invoice_preview_for_plan(
                customer=customer,
                customer_fields=customer_fields,
                plan=plan,
                billing_time=data.get("billing_time") or BillingTime.CALENDAR,
                subscription_at=data.get("subscription_at"),
                render=render,
            )
        else:
            raise Unprocessable({"plan_code": ["value_is_mandatory"]})
        return Response({"invoice": answer})
