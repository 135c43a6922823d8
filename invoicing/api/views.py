"""Invoices, fees and current usage in Lago's paths and shapes, and the signed PDF links. Thin:
parse, call the billing services, render. invoicing.errors become Lago's error shape in
billing_project.api.errors."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from django.core import signing
from django.db.models import Q
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_date
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import NotFound, Unprocessable, error_body
from billing_project.api.views import paginated, unwrap
from customers.models import Customer
from plans.models import AddOn

from .. import invoice_actions, pdf, services
from ..corrections import api as corrections_api
from ..errors import NotAllowedError
from ..models import Fee, FeePaymentStatus, FeeType, Invoice, InvoiceStatus, InvoiceType, PaymentStatus
from . import queries
from . import serializers as s

logger = logging.getLogger(__name__)

_OBJECT = OpenApiResponse(response=OpenApiTypes.OBJECT)
_ERROR = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Lago's error shape")
_PAGE = [OpenApiParameter("page", int), OpenApiParameter("per_page", int)]


class InvoicingView(APIView):
    resource_name = "invoice"


def actor_of(request: Request) -> str:
    api_key = getattr(request.user, "api_key", None)
    return f"api:{api_key.name}" if api_key is not None else "api"


def _base_url(request: Request) -> str:
    return request.build_absolute_uri("/").rstrip("/")


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def _invoice(invoice_id: str | None) -> Invoice:
    parsed = _uuid(invoice_id)
    visible = Invoice.objects.exclude(status=InvoiceStatus.DELETED).select_related("customer")
    invoice = visible.filter(pk=parsed).first() if parsed else None
    if invoice is None:
        raise NotFound("invoice")
    return invoice


def _invoice_answer(request: Request, invoice: Invoice) -> Response:
    fresh = queries.invoices_in_full().get(pk=invoice.pk)
    context = s.InvoiceContext(_base_url(request))
    return Response({"invoice": s.serialize_invoice(fresh, context, full=True)})


def _choice(params: Any, name: str, values: list[str]) -> str | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    if value not in values:
        raise Unprocessable({name: ["value_is_invalid"]})
    return value


def _date(params: Any, name: str) -> date | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    try:
        parsed = parse_date(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise Unprocessable({name: ["invalid_date"]})
    return parsed


def _boolean(params: Any, name: str) -> bool | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    if value.lower() not in ("true", "false"):
        raise Unprocessable({name: ["value_is_invalid"]})
    return value.lower() == "true"


_INVOICE_FILTERS = [
    OpenApiParameter("external_customer_id", str),
    OpenApiParameter("status", str, enum=InvoiceStatus.values),
    OpenApiParameter("payment_status", str, enum=PaymentStatus.values),
    OpenApiParameter("invoice_type", str, enum=InvoiceType.values),
    OpenApiParameter("issuing_date_from", OpenApiTypes.DATE),
    OpenApiParameter("issuing_date_to", OpenApiTypes.DATE),
    OpenApiParameter("payment_overdue", bool),
    OpenApiParameter("currency", str),
]


class InvoicesView(InvoicingView):
    @extend_schema(operation_id="findAllInvoices", parameters=[*_PAGE, *_INVOICE_FILTERS], responses={200: _OBJECT})
    def get(self, request: Request) -> Response:
        params = request.query_params
        return _invoice_index(request, params.get("external_customer_id") or params.get("customer_external_id"))

    @extend_schema(
        operation_id="createOneOffInvoice",
        request=inline_serializer("CreateOneOffInvoiceRequest", fields={"invoice": s.OneOffInvoiceInput()}),
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
    )
    def post(self, request: Request) -> Response:
        serializer = s.OneOffInvoiceInput(data=unwrap(request, "invoice"))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        customer = Customer.live.filter(external_id=data["external_customer_id"]).first()
        if customer is None:
            raise NotFound("customer")
        codes = {fee["add_on_code"] for fee in data["fees"]}
        add_ons = {add_on.code: add_on for add_on in AddOn.live.filter(code__in=codes).prefetch_related("taxes")}
        if codes - add_ons.keys():
            raise NotFound("add_on")
        fees = [
            {
                "add_on": add_ons[fee["add_on_code"]],
                "units": fee.get("units"),
                "unit_amount_cents": fee.get("unit_amount_cents"),
                "description": fee.get("description") or "",
                "invoice_display_name": fee.get("invoice_display_name") or "",
                "from_datetime": fee.get("from_datetime"),
                "to_datetime": fee.get("to_datetime"),
                "tax_codes": fee.get("tax_codes"),
            }
            for fee in data["fees"]
        ]
        invoice = services.invoice_create_one_off(
            customer=customer, currency=(data.get("currency") or "").upper(), fees=fees, actor=actor_of(request)
        )
        return _invoice_answer(request, invoice)


def _invoice_index(request: Request, customer_id: str | None) -> Response:
    """Lago's InvoiceIndex: GET /invoices and a customer's /invoices, with the same filters."""
    params = request.query_params
    rows = queries.invoices_for_list()
    if customer_id:
        rows = rows.filter(customer__external_id=customer_id)
    for name, values in (
        ("status", InvoiceStatus.values),
        ("payment_status", PaymentStatus.values),
        ("invoice_type", InvoiceType.values),
    ):
        value = _choice(params, name, values)
        if value is not None:
            rows = rows.filter(**{name: value})
    issued_from, issued_to = _date(params, "issuing_date_from"), _date(params, "issuing_date_to")
    if issued_from is not None:
        rows = rows.filter(issuing_date__gte=issued_from)
    if issued_to is not None:
        rows = rows.filter(issuing_date__lte=issued_to)
    overdue = _boolean(params, "payment_overdue")
    if overdue is not None:
        rows = rows.filter(payment_overdue=overdue)
    if params.get("currency"):
        rows = rows.filter(currency=params["currency"].upper())
    base_url = _base_url(request)
    return paginated(request, rows, "invoices", lambda page: s.serialize_invoices(page, base_url=base_url), many=True)


class CustomerInvoicesView(InvoicingView):
    resource_name = "invoice"

    @extend_schema(
        operation_id="findAllCustomerInvoices",
        parameters=[*_PAGE, *_INVOICE_FILTERS[1:]],
        responses={200: _OBJECT, 404: _ERROR},
    )
    def get(self, request: Request, external_id: str) -> Response:
        # Lago's Customers::InvoicesController#index: a 404 customer_not_found first.
        if not Customer.live.filter(external_id=external_id).exists():
            raise NotFound("customer")
        return _invoice_index(request, external_id)


class InvoiceView(InvoicingView):
    @extend_schema(operation_id="findInvoice", responses={200: _OBJECT, 404: _ERROR})
    def get(self, request: Request, invoice_id: str) -> Response:
        return _invoice_answer(request, _invoice(invoice_id))

    @extend_schema(
        operation_id="updateInvoice",
        description="Only `payment_status` and `metadata` change; amounts never do.",
        request=inline_serializer("UpdateInvoiceRequest", fields={"invoice": s.InvoiceUpdateInput()}),
        responses={200: _OBJECT, 404: _ERROR, 405: _ERROR, 422: _ERROR},
    )
    def put(self, request: Request, invoice_id: str) -> Response:
        invoice = _invoice(invoice_id)
        serializer = s.InvoiceUpdateInput(data=unwrap(request, "invoice"))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        changes: dict[str, Any] = {}
        if "payment_status" in data:
            changes["payment_status"] = data["payment_status"]
        if "metadata" in data:
            changes["metadata"] = [dict(item) for item in data["metadata"]]
        updated = services.invoice_update(invoice=invoice, actor=actor_of(request), **changes)
        return _invoice_answer(request, updated)

    @extend_schema(
        operation_id="destroyInvoice",
        description=(
            "Delete a draft invoice (Lago: 405 `not_deletable` for any other status). A correction "
            "draft is discarded instead, with a required `reason`: its late events count as handled."
        ),
        responses={200: _OBJECT, 404: _ERROR, 405: _ERROR},
    )
    def delete(self, request: Request, invoice_id: str) -> Response:
        invoice = _invoice(invoice_id)
        if invoice.invoice_type == InvoiceType.CORRECTION:
            corrections_api.invoice_discard(
                invoice=invoice, reason=corrections_api.discard_reason(request), actor=actor_of(request)
            )
            return Response({"invoice": {"lago_id": str(invoice.pk), "status": "discarded"}})
        deleted = invoice_actions.invoice_draft_delete(invoice=invoice, actor=actor_of(request))
        # Answered from the row (the API no longer finds a deleted invoice), as Lago does.
        fresh = queries.invoices_in_full().get(pk=deleted.pk)
        return Response({"invoice": s.serialize_invoice(fresh, s.InvoiceContext(_base_url(request)), full=True)})


def _service(name: str) -> Callable[..., Invoice]:
    return getattr(invoice_actions, name, None) or getattr(services, name)


def _action(operation_id: str, service: str, description: str) -> Callable[..., Response]:
    @extend_schema(
        operation_id=operation_id,
        description=description,
        request=None,
        responses={200: _OBJECT, 404: _ERROR, 405: _ERROR},
    )
    def handler(self: APIView, request: Request, invoice_id: str) -> Response:
        invoice = _invoice(invoice_id)
        updated = _service(service)(invoice=invoice, actor=actor_of(request))
        return _invoice_answer(request, updated)

    return handler


class InvoiceRefreshView(InvoicingView):
    patch_as_put = False  # Lago: `put :refresh`, no PATCH
    put = _action("refreshInvoice", "invoice_refresh", "Recompute a draft invoice from current usage.")


class InvoiceFinalizeView(InvoicingView):
    patch_as_put = False  # Lago: `put :finalize`, no PATCH
    put = _action("finalizeInvoice", "invoice_finalize", "Finalize a draft: number, frozen customer, PDF, payment.")


class InvoiceVoidView(InvoicingView):
    post = _action("voidInvoice", "invoice_void", "Void a finalized invoice that is not paid.")


class InvoiceRetryView(InvoicingView):
    post = _action(
        "retryInvoice", "invoice_generation_retry", "Generate a failed invoice again (405 invalid_status otherwise)."
    )


class InvoiceLoseDisputeView(InvoicingView):
    # Lago routes POST; lago-python-client sends PUT: both.
    post = _action("loseInvoiceDispute", "invoice_dispute_lose", "Mark an issued invoice's disputed payment as lost.")
    put = _action("loseInvoiceDisputePut", "invoice_dispute_lose", "Mark an issued invoice's disputed payment as lost.")


class InvoiceDownloadView(InvoicingView):
    @extend_schema(
        operation_id="downloadInvoice",
        description="Answers the invoice with `file_url`: a signed link to its PDF that expires.",
        request=None,
        responses={200: _OBJECT, 404: _ERROR},
    )
    def post(self, request: Request, invoice_id: str) -> Response:
        invoice = _invoice(invoice_id)
        # As Lago: only issued documents have a PDF to download (a draft still changes).
        if invoice.status not in (InvoiceStatus.FINALIZED, InvoiceStatus.VOIDED):
            raise NotFound("invoice")
        if not invoice.file:
            pdf.invoice_pdf_render(invoice=invoice, actor=actor_of(request))
        return _invoice_answer(request, invoice)


class InvoiceDownloadPdfView(InvoiceDownloadView):
    """Lago's download_pdf: the same action as download."""

    @extend_schema(
        operation_id="downloadInvoicePdf",
        description="Answers the invoice with `file_url`: a signed link to its PDF that expires.",
        request=None,
        responses={200: _OBJECT, 404: _ERROR},
    )
    def post(self, request: Request, invoice_id: str) -> Response:
        return super().post(request, invoice_id)


# --------------------------------------------------------------------------------------------
# Fees


_FEE_FILTERS = [
    OpenApiParameter("external_customer_id", str),
    OpenApiParameter("external_subscription_id", str),
    OpenApiParameter("fee_type", str, enum=FeeType.values),
    OpenApiParameter("payment_status", str, enum=FeePaymentStatus.values),
    OpenApiParameter("currency", str),
    OpenApiParameter("billable_metric_code", str),
    OpenApiParameter("created_at_from", OpenApiTypes.DATE),
    OpenApiParameter("created_at_to", OpenApiTypes.DATE),
]


class FeesView(InvoicingView):
    resource_name = "fee"

    @extend_schema(operation_id="findAllFees", parameters=[*_PAGE, *_FEE_FILTERS], responses={200: _OBJECT})
    def get(self, request: Request) -> Response:
        params = request.query_params
        rows = queries.fees_for_list()
        if params.get("external_customer_id"):
            rows = rows.filter(invoice__customer__external_id=params["external_customer_id"])
        if params.get("external_subscription_id"):
            rows = rows.filter(subscription__external_id=params["external_subscription_id"])
        fee_type = _choice(params, "fee_type", FeeType.values)
        if fee_type is not None:
            rows = rows.filter(fee_type=fee_type)
        payment_status = _choice(params, "payment_status", FeePaymentStatus.values)
        if payment_status is not None:
            rows = rows.filter(
                Q(invoice__isnull=False, invoice__payment_status=payment_status)
                | Q(invoice__isnull=True, payment_status=payment_status)
            )
        if params.get("currency"):
            rows = rows.filter(currency=params["currency"].upper())
        if params.get("billable_metric_code"):
            rows = rows.filter(charge__billable_metric__code=params["billable_metric_code"])
        created_from, created_to = _date(params, "created_at_from"), _date(params, "created_at_to")
        if created_from is not None:
            rows = rows.filter(created_at__date__gte=created_from)
        if created_to is not None:
            rows = rows.filter(created_at__date__lte=created_to)
        return paginated(request, rows, "fees", s.serialize_fees, many=True)


class FeeView(InvoicingView):
    resource_name = "fee"

    @extend_schema(operation_id="findFee", responses={200: _OBJECT, 404: _ERROR})
    def get(self, request: Request, fee_id: str) -> Response:
        parsed = _uuid(fee_id)
        fee = queries.fees_for_list().filter(pk=parsed).first() if parsed else None
        if fee is None:
            raise NotFound("fee")
        return Response({"fee": s.serialize_fee(fee, fee.invoice)})

    @extend_schema(
        operation_id="updateFee",
        description="The payment status of a fee without an invoice (405 `invoiced_fee` otherwise).",
        request=inline_serializer("UpdateFeeRequest", fields={"fee": s.FeeUpdateInput()}),
        responses={200: _OBJECT, 404: _ERROR, 405: _ERROR, 422: _ERROR},
    )
    def put(self, request: Request, fee_id: str) -> Response:
        fee = _fee(fee_id)
        serializer = s.FeeUpdateInput(data=unwrap(request, "fee"))
        serializer.is_valid(raise_exception=True)
        status = serializer.validated_data.get("payment_status")
        if status is not None:
            invoice_actions.fee_payment_status_update(fee=fee, payment_status=status)
        elif fee.invoice_id is not None:
            raise NotAllowedError("invoiced_fee")
        return Response({"fee": s.serialize_fee(_fee(fee_id), fee.invoice)})

    @extend_schema(
        operation_id="destroyFee",
        description="Discard a fee without an invoice (405 `invoiced_fee` otherwise).",
        responses={200: _OBJECT, 404: _ERROR, 405: _ERROR},
    )
    def delete(self, request: Request, fee_id: str) -> Response:
        fee = _fee(fee_id)
        deleted = invoice_actions.fee_delete(fee=fee)
        fee.deleted_at = deleted.deleted_at
        return Response({"fee": s.serialize_fee(fee, fee.invoice)})


def _fee(fee_id: str) -> Fee:
    parsed = _uuid(fee_id)
    fee = queries.fees_for_list().filter(pk=parsed).first() if parsed else None
    if fee is None:
        raise NotFound("fee")
    return fee


# --------------------------------------------------------------------------------------------
# Current usage


class CustomerCurrentUsageView(InvoicingView):
    resource_name = "customer"

    @extend_schema(
        operation_id="findCustomerCurrentUsage",
        parameters=[OpenApiParameter("external_subscription_id", str, required=True)],
        responses={200: _OBJECT, 404: _ERROR},
    )
    def get(self, request: Request, external_id: str) -> Response:
        from ..usage import current_usage_subscription, customer_usage

        # Two queries for the subscription and everything its usage reads (customer, plan,
        # charges, taxes: usage.current_usage_subscription); which of the two is missing only on a miss.
        subscription = current_usage_subscription(
            customer_external_id=external_id,
            external_subscription_id=request.query_params.get("external_subscription_id") or "",
        )
        if subscription is None:
            if not Customer.live.filter(external_id=external_id).exists():
                raise NotFound("customer")
            raise NotFound("subscription")
        usage = customer_usage(subscription=subscription, at=timezone.now())
        return Response({"customer_usage": s.serialize_customer_usage(usage)})


# --------------------------------------------------------------------------------------------
# Signed PDF links


def document_download(request: HttpRequest, token: str) -> HttpResponse | FileResponse:
    """Serve a document's PDF to whoever holds a valid link (no API key: the signature is the
    credential). Tampered or expired links answer 403 in the API's error shape, never 500."""
    if request.method not in ("GET", "HEAD"):
        return JsonResponse(error_body(405), status=405)
    try:
        document = pdf.document_from_token(token)
    except signing.SignatureExpired:
        return JsonResponse(error_body(403, code="expired_link"), status=403)
    except (signing.BadSignature, ValueError, TypeError, KeyError):
        return JsonResponse(error_body(403, code="invalid_signature"), status=403)
    if document is None or not document.file:
        return JsonResponse(error_body(404, code="file_not_found"), status=404)
    try:
        handle = document.file.open("rb")
    except OSError:
        logger.warning("PDF file %s of %s is missing from storage", document.file.name, document.pk)
        return JsonResponse(error_body(404, code="file_not_found"), status=404)
    filename = f"{document.number or document.pk}.pdf"
    response = FileResponse(handle, content_type="application/pdf", filename=filename)
    response["Cache-Control"] = "private, no-store"
    return response
