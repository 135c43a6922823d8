"""Lago's resend_email actions: POST /invoices/{id}/resend_email and /credit_notes/{id}/resend_email,
with optional `to`, `cc` and `bcc` lists. Thin: find the document, call the e-mail service."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing_project.api.errors import BadRequest, NotFound

from ..mail.services import document_email_resend
from ..models import CreditNote, InvoiceStatus
from .views import InvoicingView, _invoice, _uuid, actor_of


class ResendEmailInput(serializers.Serializer):
    """Documents the body; the service validates it (Lago's messages)."""

    to = serializers.ListField(child=serializers.CharField(), required=False, help_text="default: the customer's")
    cc = serializers.ListField(child=serializers.CharField(), required=False)
    bcc = serializers.ListField(child=serializers.CharField(), required=False)


RESEND_RESPONSES = {
    200: OpenApiResponse(description="Queued: the message leaves after commit (its outcome is on the timeline)."),
    404: OpenApiResponse(description="Unknown document"),
    405: OpenApiResponse(description="`email_settings_disabled` or `<document>_not_finalized`"),
    422: OpenApiResponse(description="No organization e-mail, no recipient, or an invalid address"),
}


def recipients_of(request: Request) -> dict[str, Any]:
    data = request.data if request.data else {}
    if not isinstance(data, dict):
        raise BadRequest("the body must be an object")
    return {field: data.get(field) for field in ("to", "cc", "bcc")}


class InvoiceResendEmailView(InvoicingView):
    @extend_schema(operation_id="resendInvoiceEmail", request=ResendEmailInput, responses=RESEND_RESPONSES)
    def post(self, request: Request, invoice_id: str) -> Response:
        invoice = _invoice(invoice_id)
        document_email_resend(
            document_type="invoice",
            document_id=invoice.pk,
            invoice_id=invoice.pk,
            finalized=invoice.status == InvoiceStatus.FINALIZED,
            customer_email=invoice.customer.email,
            actor=actor_of(request),
            **recipients_of(request),
        )
        return Response(status=200)


class CreditNoteResendEmailView(InvoicingView):
    resource_name = "credit_note"

    @extend_schema(operation_id="resendCreditNoteEmail", request=ResendEmailInput, responses=RESEND_RESPONSES)
    def post(self, request: Request, credit_note_id: str) -> Response:
        parsed = _uuid(credit_note_id)
        note = CreditNote.objects.select_related("customer").filter(pk=parsed).first() if parsed else None
        if note is None:
            raise NotFound("credit_note")
        document_email_resend(
            document_type="credit_note",
            document_id=note.pk,
            invoice_id=note.invoice_id,
            finalized=True,  # a credit note is issued when created (no drafts here)
            customer_email=note.customer.email,
            actor=actor_of(request),
            **recipients_of(request),
        )
        return Response(status=200)


urlpatterns = [
    path("invoices/<str:invoice_id>/resend_email", InvoiceResendEmailView.as_view(), name="invoice-resend-email"),
    path(
        "credit_notes/<str:credit_note_id>/resend_email",
        CreditNoteResendEmailView.as_view(),
        name="credit-note-resend-email",
    ),
]
