"""Payments API (Lago's paths and envelopes): manual payments, payment lists, retrying an
invoice's payment, and a customer's Stripe payment methods. Thin: validate, call services."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import NotFound, Unprocessable
from billing_project.api.views import paginated, unwrap
from customers.models import Customer
from invoicing.models import Invoice
from payments import selectors, services
from payments.models import PaymentTrigger

from .serializers import (
    ManualPaymentInput,
    PaymentMethodInput,
    payment_method_lago_id,
    serialize_payment,
    serialize_payment_method,
)

_OBJECT = OpenApiResponse(response=OpenApiTypes.OBJECT)
_EMPTY = OpenApiResponse(description="Retry started; its outcome shows on the invoice and its payments.")


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def _live_customer(external_id: str) -> Customer:
    customer = Customer.live.filter(external_id=external_id).first()
    if customer is None:
        raise NotFound("customer")
    return customer


_PAYMENT_REQUEST = inline_serializer("CreatePaymentRequest", fields={"payment": ManualPaymentInput()})
_PAYMENT_METHOD_REQUEST = inline_serializer(
    "AttachPaymentMethodRequest", fields={"payment_method": PaymentMethodInput()}
)


class PaymentsView(APIView):
    @extend_schema(
        operation_id="listPayments",
        parameters=[
            OpenApiParameter("invoice_id", str, description="Payments of one invoice (its lago_id)"),
            OpenApiParameter("external_customer_id", str, description="Payments of one customer"),
            OpenApiParameter("page", int),
            OpenApiParameter("per_page", int),
        ],
        responses={200: _OBJECT},
    )
    def get(self, request: Request) -> Response:
        queryset = selectors.payments_list()
        invoice_id = request.query_params.get("invoice_id")
        if invoice_id:
            parsed = _uuid_or_none(invoice_id)
            if parsed is None:
                raise Unprocessable({"invoice_id": ["value_is_invalid"]})
            queryset = queryset.filter(invoice_id=parsed)
        external_customer_id = request.query_params.get("external_customer_id")
        if external_customer_id:
            queryset = queryset.filter(customer__external_id=external_customer_id)
        return paginated(request, queryset, "payments", serialize_payment)

    @extend_schema(operation_id="createPayment", request=_PAYMENT_REQUEST, responses={200: _OBJECT})
    def post(self, request: Request) -> Response:
        serializer = ManualPaymentInput(data=unwrap(request, "payment"))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        invoice_id = _uuid_or_none(data["invoice_id"])
        if invoice_id is None or not Invoice.objects.filter(pk=invoice_id).exists():
            raise NotFound("invoice")
        payment = services.payment_create_manual(
            invoice_id=invoice_id,
            amount_cents=data["amount_cents"],
            reference=data["reference"],
            paid_at=data.get("paid_at"),
        )
        payment = selectors.payments_list().get(pk=payment.pk)
        return Response({"payment": serialize_payment(payment)})


class PaymentDetailView(APIView):
    @extend_schema(operation_id="findPayment", responses={200: _OBJECT})
    def get(self, request: Request, lago_id: str) -> Response:
        payment_id = _uuid_or_none(lago_id)
        payment = selectors.payments_list().filter(pk=payment_id).first() if payment_id else None
        if payment is None:
            raise NotFound("payment")
        return Response({"payment": serialize_payment(payment)})


class InvoiceRetryPaymentView(APIView):
    @extend_schema(operation_id="retryInvoicePayment", request=None, responses={200: _EMPTY})
    def post(self, request: Request, invoice_id: str) -> Response:
        parsed = _uuid_or_none(invoice_id)
        if parsed is None or not Invoice.objects.filter(pk=parsed).exists():
            raise NotFound("invoice")
        services.invoice_payment_retry(invoice_id=parsed, trigger=PaymentTrigger.API, announce_missing_provider=True)
        # Lago answers an empty 200: the outcome arrives through the invoice and payment resources.
        return Response(status=200)


class CustomerPaymentsView(APIView):
    @extend_schema(
        operation_id="listCustomerPayments",
        parameters=[OpenApiParameter("page", int), OpenApiParameter("per_page", int)],
        responses={200: _OBJECT},
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = _live_customer(external_id)
        queryset = selectors.payments_list().filter(customer=customer)
        return paginated(request, queryset, "payments", serialize_payment)


class CustomerPaymentMethodsView(APIView):
    @extend_schema(
        operation_id="listCustomerPaymentMethods",
        parameters=[OpenApiParameter("page", int), OpenApiParameter("per_page", int)],
        responses={200: _OBJECT},
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = _live_customer(external_id)
        queryset, default_id = selectors.customer_payment_methods(customer=customer)
        return paginated(
            request,
            queryset,
            "payment_methods",
            lambda payment_method: serialize_payment_method(payment_method, default_id=default_id),
        )

    @extend_schema(
        operation_id="attachCustomerPaymentMethod",
        description=(
            "Tollgate extension (Lago has no public endpoint for this): attach a Stripe PaymentMethod "
            "(`pm_...`, e.g. `pm_card_visa` in test mode) to the customer's Stripe customer, creating "
            "the Stripe customer first if needed, and make it the default for invoices."
        ),
        request=_PAYMENT_METHOD_REQUEST,
        responses={200: _OBJECT},
    )
    def post(self, request: Request, external_id: str) -> Response:
        customer = _live_customer(external_id)
        serializer = PaymentMethodInput(data=unwrap(request, "payment_method"))
        serializer.is_valid(raise_exception=True)
        attached = services.customer_payment_method_attach(
            customer=customer,
            provider_method_id=serializer.validated_data["provider_method_id"],
            set_as_default=serializer.validated_data["set_as_default"],
        )
        return Response({"payment_method": _payment_method_response(customer, attached["id"])})


class CustomerPaymentMethodDefaultView(APIView):
    @extend_schema(operation_id="setCustomerPaymentMethodAsDefault", request=None, responses={200: _OBJECT})
    def put(self, request: Request, external_id: str, payment_method_id: str) -> Response:
        customer = _live_customer(external_id)
        queryset, _ = selectors.customer_payment_methods(customer=customer)
        match = next(
            (pm for pm in queryset if payment_method_id in (pm.id, payment_method_lago_id(pm.id))),
            None,
        )
        if match is None:
            raise NotFound("payment_method")
        services.customer_payment_method_set_default(customer=customer, provider_method_id=match.id)
        return Response({"payment_method": _payment_method_response(customer, match.id)})


def _payment_method_response(customer: Customer, provider_method_id: str) -> dict[str, Any]:
    customer.refresh_from_db(fields=["provider_customer_id"])
    queryset, default_id = selectors.customer_payment_methods(customer=customer)
    payment_method = queryset.get(id=provider_method_id)
    return serialize_payment_method(payment_method, default_id=default_id)


class WalletTransactionPaymentUrlView(APIView):
    resource_name = "wallet_transaction"

    @extend_schema(operation_id="generateWalletTransactionPaymentUrl", request=None, responses={200: _OBJECT})
    def post(self, request: Request, transaction_id: str) -> Response:
        from invoicing.wallets.models import WalletTransaction

        from ..wallet_checkout import wallet_transaction_payment_url

        parsed = _uuid_or_none(transaction_id)
        row = (
            WalletTransaction.objects.select_related("invoice__customer").filter(pk=parsed).first() if parsed else None
        )
        if row is None:
            raise NotFound("wallet_transaction")
        url = wallet_transaction_payment_url(wallet_transaction=row)
        return Response({"wallet_transaction_payment_details": {"payment_url": url}})


class InvoicePaymentUrlView(APIView):
    resource_name = "invoice"

    @extend_schema(
        operation_id="generateInvoicePaymentUrl",
        description="A Stripe Checkout link paying what the invoice still owes (settled by Stripe's webhook).",
        request=None,
        responses={200: _OBJECT},
    )
    def post(self, request: Request, invoice_id: str) -> Response:
        from invoicing.models import InvoiceStatus

        from ..checkout import invoice_payment_url

        parsed = _uuid_or_none(invoice_id)
        invoice = (
            Invoice.objects.exclude(status=InvoiceStatus.DELETED).select_related("customer").filter(pk=parsed).first()
            if parsed
            else None
        )
        if invoice is None:
            raise NotFound("invoice")
        url = invoice_payment_url(invoice=invoice)
        # Lago's V1::PaymentProviders::InvoicePaymentSerializer.
        return Response(
            {
                "invoice_payment_details": {
                    "lago_customer_id": str(invoice.customer_id),
                    "external_customer_id": invoice.customer.external_id,
                    "payment_provider": invoice.customer.payment_provider or None,
                    "lago_invoice_id": str(invoice.pk),
                    "payment_url": url,
                }
            }
        )


class CustomerCheckoutUrlView(APIView):
    resource_name = "customer"

    @extend_schema(
        operation_id="generateCustomerCheckoutUrl",
        description="A Stripe Checkout link in setup mode, where the customer saves a card.",
        request=None,
        responses={200: _OBJECT},
    )
    def post(self, request: Request, external_id: str) -> Response:
        from ..checkout import customer_setup_checkout_link

        customer = _live_customer(external_id)
        link = customer_setup_checkout_link(customer=customer)
        # Lago's V1::PaymentProviders::CustomerCheckoutSerializer.
        return Response(
            {
                "customer": {
                    "lago_customer_id": str(customer.pk),
                    "external_customer_id": customer.external_id,
                    "payment_provider": customer.payment_provider or None,
                    "payment_provider_code": customer.payment_provider or None,
                    "checkout_url": link.url,
                }
            }
        )
