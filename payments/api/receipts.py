"""Lago's payment receipts: GET /payment_receipts (filter invoice_id), GET /payment_receipts/{id},
POST /payment_receipts/{id}/resend_email; and the signed link serving a receipt's PDF."""

from __future__ import annotations

import logging
from typing import Any

from django.core import signing
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import NotFound, Unprocessable, error_body
from billing_project.api.views import paginated
from invoicing.api.emails import RESEND_RESPONSES, ResendEmailInput, recipients_of
from invoicing.api.views import actor_of
from invoicing.mail.services import document_email_resend

from ..models import PaymentReceipt
from ..receipts import receipt_from_token, signed_receipt_url
from .serializers import serialize_payment
from .views import _uuid_or_none

logger = logging.getLogger(__name__)


def receipts_list() -> Any:
    return PaymentReceipt.objects.select_related("payment__invoice", "payment__customer", "customer").order_by(
        "-created_at", "-id"
    )


def serialize_payment_receipt(receipt: PaymentReceipt, base_url: str | None = None) -> dict[str, Any]:
    """Lago's payment receipt (app/serializers/v1/payment_receipt_serializer.rb)."""
    return {
        "lago_id": str(receipt.pk),
        "number": receipt.number,
        "file_url": signed_receipt_url(receipt=receipt, base_url=base_url) if receipt.file else None,
        "xml_url": None,
        "payment": serialize_payment(receipt.payment),
        "created_at": receipt.created_at.isoformat().replace("+00:00", "Z"),
    }


def _base_url(request: Request) -> str:
    return request.build_absolute_uri("/").rstrip("/")


def _receipt(receipt_id: str) -> PaymentReceipt:
    parsed = _uuid_or_none(receipt_id)
    receipt = receipts_list().filter(pk=parsed).first() if parsed else None
    if receipt is None:
        raise NotFound("payment_receipt")
    return receipt


_OBJECT = OpenApiResponse(response=OpenApiTypes.OBJECT)


class PaymentReceiptsView(APIView):
    resource_name = "payment_receipt"

    @extend_schema(
        operation_id="listPaymentReceipts",
        parameters=[
            OpenApiParameter("invoice_id", str, description="Receipts of one invoice (its lago_id)"),
            OpenApiParameter("page", int),
            OpenApiParameter("per_page", int),
        ],
        responses={200: _OBJECT},
    )
    def get(self, request: Request) -> Response:
        queryset = receipts_list()
        invoice_id = request.query_params.get("invoice_id")
        if invoice_id:
            parsed = _uuid_or_none(invoice_id)
            if parsed is None:
                raise Unprocessable({"invoice_id": ["value_is_invalid"]})
            queryset = queryset.filter(invoice_id=parsed)
        base_url = _base_url(request)
        return paginated(request, queryset, "payment_receipts", lambda r: serialize_payment_receipt(r, base_url))


class PaymentReceiptView(APIView):
    resource_name = "payment_receipt"

    @extend_schema(operation_id="findPaymentReceipt", responses={200: _OBJECT, 404: _OBJECT})
    def get(self, request: Request, receipt_id: str) -> Response:
        receipt = _receipt(receipt_id)
        return Response({"payment_receipt": serialize_payment_receipt(receipt, _base_url(request))})


class PaymentReceiptResendEmailView(APIView):
    resource_name = "payment_receipt"

    @extend_schema(operation_id="resendPaymentReceiptEmail", request=ResendEmailInput, responses=RESEND_RESPONSES)
    def post(self, request: Request, receipt_id: str) -> Response:
        receipt = _receipt(receipt_id)
        document_email_resend(
            document_type="payment_receipt",
            document_id=receipt.pk,
            invoice_id=receipt.invoice_id,
            finalized=True,  # Lago: a receipt is always sendable
            customer_email=receipt.customer.email,
            actor=actor_of(request),
            **recipients_of(request),
        )
        return Response(status=200)


def receipt_download(request: HttpRequest, token: str) -> HttpResponse | FileResponse:
    """A receipt's PDF for whoever holds a valid link (the signature is the credential)."""
    if request.method not in ("GET", "HEAD"):
        return JsonResponse(error_body(405), status=405)
    try:
        receipt = receipt_from_token(token)
    except signing.SignatureExpired:
        return JsonResponse(error_body(403, code="expired_link"), status=403)
    except (signing.BadSignature, ValueError, TypeError, KeyError):
        return JsonResponse(error_body(403, code="invalid_signature"), status=403)
    if receipt is None or not receipt.file:
        return JsonResponse(error_body(404, code="file_not_found"), status=404)
    try:
        handle = receipt.file.open("rb")
    except OSError:
        logger.warning("PDF file %s of receipt %s is missing from storage", receipt.file.name, receipt.pk)
        return JsonResponse(error_body(404, code="file_not_found"), status=404)
    response = FileResponse(handle, content_type="application/pdf", filename=f"{receipt.number}.pdf")
    response["Cache-Control"] = "private, no-store"
    return response


urlpatterns = [
    path("payment_receipts", PaymentReceiptsView.as_view(), name="payment-receipts"),
    path("payment_receipts/files/<str:token>", receipt_download, name="payment-receipt-document"),
    path("payment_receipts/<str:receipt_id>", PaymentReceiptView.as_view(), name="payment-receipt"),
    path(
        "payment_receipts/<str:receipt_id>/resend_email",
        PaymentReceiptResendEmailView.as_view(),
        name="payment-receipt-resend-email",
    ),
]
