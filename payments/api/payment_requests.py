"""Lago's payment requests: POST/GET /payment_requests, GET /payment_requests/{id} and GET
/customers/{external_id}/payment_requests, with the customer and the invoices included."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import NotFound, Unprocessable
from billing_project.api.views import paginated, unwrap
from billing_project.money import to_cents
from customers.api.serializers import serialize_customer
from customers.models import Customer
from invoicing.api import queries as invoice_queries
from invoicing.api.serializers import InvoiceContext, serialize_invoice
from invoicing.api.views import actor_of

from ..models import Payment, PaymentRequest, PaymentRequestStatus
from ..payment_requests import payment_request_create
from .views import _uuid_or_none

_OBJECT = OpenApiResponse(response=OpenApiTypes.OBJECT)


class PaymentRequestInput(serializers.Serializer):
    """Documents the body (the view validates it with Lago's codes)."""

    external_customer_id = serializers.CharField()
    lago_invoice_ids = serializers.ListField(child=serializers.UUIDField())
    email = serializers.CharField(required=False, allow_null=True, help_text="default: the customer's")


def payment_requests_list() -> QuerySet[PaymentRequest]:
    return (
        PaymentRequest.objects.select_related("customer")
        .prefetch_related(Prefetch("invoices", queryset=invoice_queries.invoices_in_full().order_by("issuing_date")))
        .order_by("-created_at", "-id")
    )


def serialize_payment_request(request: PaymentRequest, context: InvoiceContext) -> dict[str, Any]:
    """Lago's payment request (app/serializers/v1/payment_request_serializer.rb, customer and
    invoices included as its controllers do)."""
    return {
        "lago_id": str(request.pk),
        "amount_cents": to_cents(request.amount, request.currency),
        "amount_currency": request.currency,
        "email": request.email or None,
        "payment_status": request.payment_status,
        "created_at": request.created_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "customer": serialize_customer(request.customer, context.organization),
        "invoices": [serialize_invoice(invoice, context, full=False) for invoice in request.invoices.all()],
    }


def serialize_payment_requests(requests: Iterable[PaymentRequest], base_url: str | None) -> list[dict[str, Any]]:
    context = InvoiceContext(base_url)
    return [serialize_payment_request(request, context) for request in requests]


def _base_url(request: Request) -> str:
    return request.build_absolute_uri("/").rstrip("/")


def _filtered(request: Request, queryset: QuerySet[PaymentRequest]) -> QuerySet[PaymentRequest]:
    status = request.query_params.get("payment_status")
    if status:
        if status not in PaymentRequestStatus.values:
            raise Unprocessable({"payment_status": ["value_is_invalid"]})
        queryset = queryset.filter(payment_status=status)
    currency = request.query_params.get("currency")
    if currency:
        queryset = queryset.filter(currency=currency.upper())
    return queryset


def _page(request: Request, queryset: QuerySet[PaymentRequest]) -> Response:
    base_url = _base_url(request)
    return paginated(
        request,
        _filtered(request, queryset),
        "payment_requests",
        lambda page: serialize_payment_requests(page, base_url),
        many=True,
    )


def _create_params(data: dict[str, Any]) -> tuple[str, list[Any], str | None]:
    errors: dict[str, list[str]] = {}
    external_customer_id = data.get("external_customer_id")
    if not isinstance(external_customer_id, str) or not external_customer_id.strip():
        errors["external_customer_id"] = ["value_is_mandatory"]
    ids = data.get("lago_invoice_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(item, str) for item in ids):
        errors["lago_invoice_ids"] = ["value_is_invalid"]
        parsed: list[Any] = []
    else:
        parsed = [value for value in (_uuid_or_none(item) for item in ids) if value is not None]
    email = data.get("email")
    if email is not None and not isinstance(email, str):
        errors["email"] = ["value_is_invalid"]
    if errors:
        raise Unprocessable(errors)
    return str(external_customer_id), parsed, email


class PaymentRequestsView(APIView):
    resource_name = "payment_request"

    @extend_schema(
        operation_id="listPaymentRequests",
        parameters=[
            OpenApiParameter("external_customer_id", str),
            OpenApiParameter("payment_status", str, enum=PaymentRequestStatus.values),
            OpenApiParameter("currency", str),
            OpenApiParameter("page", int),
            OpenApiParameter("per_page", int),
        ],
        responses={200: _OBJECT},
    )
    def get(self, request: Request) -> Response:
        queryset = payment_requests_list()
        external_customer_id = request.query_params.get("external_customer_id")
        if external_customer_id:
            queryset = queryset.filter(customer__external_id=external_customer_id)
        return _page(request, queryset)

    @extend_schema(
        operation_id="createPaymentRequest",
        request=inline_serializer("CreatePaymentRequestRequest", fields={"payment_request": PaymentRequestInput()}),
        responses={200: _OBJECT, 404: _OBJECT, 405: _OBJECT, 422: _OBJECT},
        description="One request for several overdue invoices of a customer (one currency), e-mailed with a "
        "pay link (Lago's payment requests).",
    )
    def post(self, request: Request) -> Response:
        external_customer_id, invoice_ids, email = _create_params(unwrap(request, "payment_request"))
        created = payment_request_create(
            external_customer_id=external_customer_id, invoice_ids=invoice_ids, email=email, actor=actor_of(request)
        )
        fresh = payment_requests_list().get(pk=created.pk)
        return Response({"payment_request": serialize_payment_request(fresh, InvoiceContext(_base_url(request)))})


class PaymentRequestView(APIView):
    resource_name = "payment_request"

    @extend_schema(operation_id="findPaymentRequest", responses={200: _OBJECT, 404: _OBJECT})
    def get(self, request: Request, payment_request_id: str) -> Response:
        parsed = _uuid_or_none(payment_request_id)
        found = payment_requests_list().filter(pk=parsed).first() if parsed else None
        if found is None:
            raise NotFound("payment_request")
        return Response({"payment_request": serialize_payment_request(found, InvoiceContext(_base_url(request)))})


class CustomerPaymentRequestsView(APIView):
    resource_name = "payment_request"

    @extend_schema(
        operation_id="listCustomerPaymentRequests",
        parameters=[
            OpenApiParameter("payment_status", str, enum=PaymentRequestStatus.values),
            OpenApiParameter("page", int),
            OpenApiParameter("per_page", int),
        ],
        responses={200: _OBJECT},
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = Customer.live.filter(external_id=external_id).first()
        if customer is None:
            raise NotFound("customer")
        return _page(request, payment_requests_list().filter(customer=customer))


def payment_request_payload(payment_request_id: Any) -> dict[str, Any]:
    """The webhooks' payment_request object."""
    return serialize_payment_request(payment_requests_list().get(pk=payment_request_id), InvoiceContext())


def payment_request_failure_payload(payment_id: Any) -> dict[str, Any]:
    """Lago's `payment_provider_payment_request_payment_error` object: the request a failed card
    retry was made for (the latest open one of its invoice made by a dunning step)."""
    payment = Payment.objects.select_related("customer").get(pk=payment_id)
    request = (
        PaymentRequest.objects.filter(applied_invoices__invoice_id=payment.invoice_id, dunning_step__isnull=False)
        .order_by("-created_at")
        .first()
    )
    return {
        "lago_payment_request_id": str(request.pk) if request else None,
        "lago_invoice_ids": [str(pk) for pk in request.applied_invoices.values_list("invoice_id", flat=True)]
        if request
        else [str(payment.invoice_id)],
        "lago_customer_id": str(payment.customer_id),
        "external_customer_id": payment.customer.external_id,
        "provider_customer_id": payment.provider_customer_id or None,
        "payment_provider": payment.provider,
        "payment_provider_code": payment.provider,
        "provider_error": {"message": payment.failure_reason or None, "error_code": payment.failure_code or None},
    }


urlpatterns = [
    path("payment_requests", PaymentRequestsView.as_view(), name="payment-requests"),
    path("payment_requests/<str:payment_request_id>", PaymentRequestView.as_view(), name="payment-request"),
    path(
        "customers/<str:external_id>/payment_requests",
        CustomerPaymentRequestsView.as_view(),
        name="customer-payment-requests",
    ),
]
