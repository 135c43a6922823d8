"""Late-usage routes: a fee's events (lineage), what-if re-rating of an invoice under another
plan, discarding a correction draft (DELETE /invoices/{id}, DELETE /credit_notes/{id}) and
finalizing a draft credit note (PUT /credit_notes/{id}/finalize)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connection
from django.db.models import F, Func
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import NotFound
from billing_project.api.views import paginated
from metrics import ingestion
from metrics.api.serializers import serialize_events
from metrics.models import Event

from .. import credit_notes
from ..errors import NotAllowedError
from ..models import CreditNote, CreditNoteStatus, Fee, Invoice, InvoiceStatus, InvoiceType
from .models import Correction, CorrectionStatus, FeeEvent, FeeEventSet
from .rerate import correction_discard, correction_issue
from .whatif import invoice_rerate_under_plan

_OBJECT = OpenApiTypes.OBJECT
_ERROR = OpenApiTypes.OBJECT
_PAGE = [OpenApiParameter("page", int), OpenApiParameter("per_page", int)]


def _parsed(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def fee_events(fee: Fee) -> Any:
    """The events a fee counted, oldest first (for a correction's fee: the late events it added).
    Its ids come from one form or the other, in one subquery (a UNION): `id IN (a) OR id IN (b)`
    would keep PostgreSQL from joining on the events' primary key and scan the events table."""
    ids = FeeEvent.objects.filter(fee=fee).values("event_id")
    if connection.vendor == "postgresql":  # an original fee's set (the lineage is PostgreSQL's)
        unnested = FeeEventSet.objects.filter(fee=fee).annotate(event_id=Func(F("event_ids"), function="unnest"))
        ids = ids.union(unnested.values("event_id"), all=True)
    return Event.objects.filter(id__in=ids).order_by("timestamp", "id")


class FeeEventsView(APIView):
    resource_name = "fee"

    @extend_schema(
        operation_id="findAllFeeEvents",
        parameters=_PAGE,
        responses={200: _OBJECT, 404: _ERROR},
        description="The events the fee counted (its lineage), in the events' shape, oldest first. "
        "The fee's units aggregate exactly these events.",
    )
    def get(self, request: Request, fee_id: str) -> Response:
        parsed = _parsed(fee_id)
        fee = Fee.objects.filter(pk=parsed).first() if parsed else None
        if fee is None:
            raise NotFound("fee")
        return paginated(
            request,
            fee_events(fee),
            "events",
            lambda page: serialize_events([ingestion.stored_event(e) for e in page]),
            many=True,
        )


class InvoiceRerateView(APIView):
    resource_name = "invoice"

    @extend_schema(
        operation_id="rerateInvoice",
        request=inline_serializer("RerateInvoiceRequest", fields={"plan_code": serializers.CharField()}),
        responses={200: _OBJECT, 404: _ERROR, 422: _ERROR},
        description="What the invoice's periods would cost under another plan (e.g. a draft price), "
        "with the usage stored now. Nothing is saved.",
    )
    def post(self, request: Request, invoice_id: str) -> Response:
        parsed = _parsed(invoice_id)
        invoice = Invoice.objects.select_related("customer").filter(pk=parsed).first() if parsed else None
        if invoice is None:
            raise NotFound("invoice")
        data: dict[str, Any] = request.data if isinstance(request.data, dict) else {}
        inner = data.get("invoice")
        body: dict[str, Any] = inner if isinstance(inner, dict) else data
        return Response({"rerate": invoice_rerate_under_plan(invoice=invoice, plan_code=body.get("plan_code"))})


def invoice_discard(*, invoice: Invoice, reason: Any, actor: str) -> Correction:
    """DELETE /invoices/{id}: only a correction draft can go (finance refuses it)."""
    if invoice.invoice_type != InvoiceType.CORRECTION or invoice.status != InvoiceStatus.DRAFT:
        raise NotAllowedError("is_not_correction_draft")
    correction = Correction.objects.filter(invoice=invoice, status=CorrectionStatus.DRAFT).first()
    if correction is None:
        raise NotAllowedError("is_not_correction_draft")
    return correction_discard(correction=correction, reason=reason, actor=actor)


def credit_note_finalize(*, credit_note: CreditNote, actor: str) -> CreditNote:
    """PUT /credit_notes/{id}/finalize: a correction's draft issues its correction (the correction
    invoice too, when it has one: finance approves the re-rating whole); any other draft is
    finalized alone; a finalized note is answered unchanged."""
    correction = Correction.objects.filter(credit_note=credit_note, status=CorrectionStatus.DRAFT).first()
    if correction is not None:
        correction_issue(correction=correction, actor=actor)
    elif credit_note.status == CreditNoteStatus.DRAFT:
        credit_notes.credit_note_finalize(credit_note=credit_note, actor=actor)
    return CreditNote.all_objects.get(pk=credit_note.pk)


def credit_note_discard(*, credit_note: CreditNote, reason: Any, actor: str) -> Correction:
    """DELETE /credit_notes/{id} (Tollgate): only a correction's draft can go; its correction is
    discarded whole, its late events handled."""
    correction = Correction.objects.filter(credit_note=credit_note, status=CorrectionStatus.DRAFT).first()
    if credit_note.status != CreditNoteStatus.DRAFT or correction is None:
        raise NotAllowedError("is_not_correction_draft")
    return correction_discard(correction=correction, reason=reason, actor=actor)


def discard_reason(request: Request, wrapper: str = "invoice") -> Any:
    """`reason` from the query, the body, or the body's `invoice` (`credit_note`) object."""
    data: dict[str, Any] = request.data if isinstance(request.data, dict) else {}
    inner = data.get(wrapper)
    nested: dict[str, Any] = inner if isinstance(inner, dict) else {}
    return request.query_params.get("reason") or data.get("reason") or nested.get("reason")


DISCARD_SCHEMA: dict[str, Any] = {
    "operation_id": "discardCorrectionInvoice",
    "parameters": [OpenApiParameter("reason", str, description="why the correction is refused (required)")],
    "request": None,
    "responses": {200: _OBJECT, 404: _ERROR, 405: _ERROR, 422: _ERROR},
    "description": "Discard a correction draft (late usage under the review policy): its events are "
    "marked handled and never proposed again; the reason is kept in the original invoice's history.",
}


CREDIT_NOTE_DISCARD_SCHEMA: dict[str, Any] = {
    "operation_id": "discardCreditNote",
    "parameters": [OpenApiParameter("reason", str, description="why the correction is refused (required)")],
    "request": None,
    "responses": {200: _OBJECT, 404: _ERROR, 405: _ERROR, 422: _ERROR},
    "description": "Tollgate: discard a draft credit note (a late-usage decrease under the review policy): its "
    "correction is discarded whole, its events are marked handled and never proposed again; the reason is kept "
    "in the original invoice's history. Refused (405 is_not_correction_draft) for any other note.",
}
