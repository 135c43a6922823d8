"""Credit notes in Lago's paths and shapes: create, estimate, list, show, void, download.
Thin: parse, call invoicing.credit_notes, render. Amounts travel as integer `*_cents`."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing_project.api.errors import BadRequest, NotFound, Unprocessable
from billing_project.api.views import paginated, unwrap
from billing_project.money import from_cents, quantum, to_cents
from customers.models import Customer
from plans.api.serializers import iso

from .. import credit_note_metadata, credit_note_refunds, credit_notes, pdf
from ..corrections import api as corrections_api
from ..corrections.models import Correction
from ..errors import InvoicingError
from ..models import (
    CreditNote,
    CreditNoteItem,
    CreditNoteReason,
    CreditNoteStatus,
    CreditStatus,
    Fee,
    Invoice,
    RefundStatus,
)
from .queries import FEE_RELATIONS
from .serializers import (
    InvoiceContext,
    StrictIntegerField,
    _precise_cents,
    serialize_applied_tax,
    serialize_customer,
    serialize_fee,
)
from .views import _ERROR, _OBJECT, InvoicingView, _base_url, _choice, _invoice, _uuid, actor_of

# --------------------------------------------------------------------------------------------
# Requests


class CreditNoteItemInput(serializers.Serializer):
    fee_id = serializers.CharField(max_length=64)
    # A negative amount is the service's `invalid_value` (Lago's code), not a type error.
    amount_cents = StrictIntegerField(min_value=-(10**15), max_value=10**15)


class CreditNoteInput(serializers.Serializer):
    invoice_id = serializers.CharField(required=False, allow_null=True, max_length=64)
    reason = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=64)
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=10_000)
    credit_amount_cents = StrictIntegerField(min_value=0, max_value=10**15, required=False, allow_null=True)
    refund_amount_cents = StrictIntegerField(min_value=0, max_value=10**15, required=False, allow_null=True)
    # Offsetting an unpaid invoice (Lago 1.3x) is not offered: only 0 or nothing is accepted.
    offset_amount_cents = StrictIntegerField(min_value=0, required=False, allow_null=True, max_value=0)
    items = serializers.ListField(child=CreditNoteItemInput(), max_length=500)
    metadata = serializers.DictField(required=False, allow_null=True)


class CreditNoteEstimateInput(serializers.Serializer):
    invoice_id = serializers.CharField(required=False, allow_null=True, max_length=64)
    items = serializers.ListField(child=CreditNoteItemInput(), max_length=500)


def _parse(serializer_class: type[serializers.Serializer], data: dict[str, Any]) -> dict[str, Any]:
    if "items" in data and not isinstance(data["items"], list):
        raise Unprocessable({"items": ["must_be_an_array"]})
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _items(invoice: Invoice, rows: list[dict[str, Any]]) -> list[tuple[Fee | None, Decimal]]:
    """(fee, amount) pairs; a fee that is not on the invoice stays None, which the service answers
    with fee_not_found after its own checks of the invoice (Lago's order)."""
    wanted = {fee_id for row in rows if (fee_id := _uuid(row["fee_id"])) is not None}
    fees: dict[UUID | None, Fee] = {fee.pk: fee for fee in Fee.objects.filter(invoice_id=invoice.pk, pk__in=wanted)}
    return [(fees.get(_uuid(row["fee_id"])), from_cents(row["amount_cents"], invoice.currency)) for row in rows]


def _parse_items_request(
    request: Request, serializer_class: type[serializers.Serializer]
) -> tuple[Invoice, dict[str, Any], list[tuple[Fee | None, Decimal]]]:
    """A create or estimate request: its invoice (404 first, as Lago), its fields, its items."""
    data = unwrap(request, "credit_note")
    invoice = _invoice(data.get("invoice_id"))
    parsed = _parse(serializer_class, data)
    return invoice, parsed, _items(invoice, parsed["items"])


def _cents_or_none(value: int | None, currency: str) -> Decimal | None:
    return None if value is None else from_cents(value, currency)


# --------------------------------------------------------------------------------------------
# Answers


def credit_notes_in_full(*, drafts: bool = False) -> QuerySet[CreditNote]:
    """Notes with what their answer renders, in a constant number of queries per page: finalized
    ones (Lago's `credit_notes.finalized`), drafts too with `drafts`. `is_correction`: the note
    credits a late-usage decrease (its answer names the invoice it corrects)."""
    items = CreditNoteItem.objects.select_related(*(f"fee__{relation}" for relation in FEE_RELATIONS)).order_by(
        "created_at", "id"
    )
    notes = CreditNote.all_objects if drafts else CreditNote.objects
    return (
        notes.select_related("invoice__customer", "customer")
        .annotate(is_correction=Exists(Correction.objects.filter(credit_note=OuterRef("pk"))))
        .prefetch_related(Prefetch("items", queryset=items), "items__fee__applied_taxes", "applied_taxes")
        .order_by("-created_at", "-id")
    )


def serialize_credit_note(note: CreditNote, context: InvoiceContext) -> dict[str, Any]:
    """Lago's credit note object (lago-python-client's CreditNoteResponse)."""
    currency = note.currency
    invoice = note.invoice

    def cents(amount: Decimal) -> int:
        return to_cents(amount, currency)

    return {
        "lago_id": str(note.pk),
        # Lago's CreditNote::STATUS (draft, finalized); only a late-usage decrease waiting for
        # finance is a draft (Tollgate: shown by GET /credit_notes/{id} and ?status=draft).
        "status": note.status,
        # A late-usage decrease (issue 15): the original invoice it corrects, as on a correction invoice.
        "corrected_invoice_id": str(note.invoice_id) if getattr(note, "is_correction", False) else None,
        "billing_entity_code": None,
        "sequential_id": note.sequential_id,
        "number": note.number,
        "lago_invoice_id": str(invoice.pk),
        "invoice_number": invoice.number,
        "purchase_order_number": None,
        "issuing_date": note.issuing_date.isoformat(),
        "credit_status": note.credit_status,
        "refund_status": note.refund_status,
        "reason": note.reason,
        "description": note.description or None,
        "currency": currency,
        "total_amount_cents": cents(note.total_amount),
        "precise_total_amount_cents": str(cents(note.total_amount)),
        "taxes_amount_cents": cents(note.taxes_amount),
        "precise_taxes_amount_cents": str(cents(note.taxes_amount)),
        "sub_total_excluding_taxes_amount_cents": cents(note.sub_total_excluding_taxes_amount),
        "balance_amount_cents": cents(note.balance_amount),
        "credit_amount_cents": cents(note.credit_amount),
        "refund_amount_cents": cents(note.refund_amount),
        "offset_amount_cents": 0,
        "coupons_adjustment_amount_cents": cents(note.coupons_adjustment_amount),
        "taxes_rate": float(note.taxes_rate),
        "created_at": iso(note.created_at),
        "updated_at": iso(note.updated_at),
        "voided_at": iso(note.voided_at),
        "metadata": note.metadata or None,
        "file_url": pdf.signed_file_url(obj=note, base_url=context.base_url) if note.file else None,
        "xml_url": None,
        "self_billed": False,
        "customer": serialize_customer(note.customer, context),
        "items": [
            {
                "lago_id": str(item.pk),
                "amount_cents": cents(item.amount),
                "precise_amount_cents": _precise_cents(item.precise_amount, currency),
                "amount_currency": currency,
                "fee": serialize_fee(item.fee, invoice),
            }
            for item in note.items.all()
        ],
        "applied_taxes": [
            {
                "lago_id": str(line.pk),
                "lago_credit_note_id": str(note.pk),
                **serialize_applied_tax(line, currency),
                "base_amount_cents": cents(line.base_amount),
                "created_at": iso(note.created_at),
            }
            for line in note.applied_taxes.all()
        ],
    }


def _estimate_precise_cents(amount: Decimal, currency: str) -> str:
    """Unrounded minor units as Lago prints an estimate's (five decimals at most, no exponent)."""
    value = (Decimal(amount) / quantum(currency)).quantize(Decimal("0.00001"))
    return format(value.normalize(), "f")


def serialize_estimate(invoice: Invoice, estimate: credit_notes.CreditNoteEstimate) -> dict[str, Any]:
    """Lago's `estimated_credit_note`."""
    currency = invoice.currency
    figures = estimate.figures

    def cents(amount: Decimal) -> int:
        return to_cents(amount, currency)

    return {
        "lago_invoice_id": str(invoice.pk),
        "invoice_number": invoice.number,
        "currency": currency,
        "taxes_amount_cents": cents(figures.taxes_amount),
        "precise_taxes_amount_cents": _estimate_precise_cents(figures.precise_taxes_amount, currency),
        "sub_total_excluding_taxes_amount_cents": cents(figures.sub_total_excluding_taxes),
        "max_creditable_amount_cents": cents(estimate.max_creditable),
        "max_refundable_amount_cents": cents(estimate.max_refundable),
        "max_offsettable_amount_cents": 0,
        "coupons_adjustment_amount_cents": cents(figures.coupons_adjustment),
        "precise_coupons_adjustment_amount_cents": _estimate_precise_cents(
            figures.precise_coupons_adjustment, currency
        ),
        "taxes_rate": float(figures.taxes_rate),
        "items": [{"lago_fee_id": str(item.fee.pk), "amount_cents": cents(item.amount)} for item in figures.items],
        "applied_taxes": [
            {**serialize_applied_tax(line, currency), "base_amount_cents": cents(line.base_amount)}
            for line in figures.taxes
        ],
    }


# --------------------------------------------------------------------------------------------
# Views


class _CreditNotesView(InvoicingView):
    resource_name = "credit_note"


def _context(request: Request) -> InvoiceContext:
    return InvoiceContext(_base_url(request))


def _credit_note(credit_note_id: str, *, drafts: bool = False) -> CreditNote:
    parsed = _uuid(credit_note_id)
    note = credit_notes_in_full(drafts=drafts).filter(pk=parsed).first() if parsed else None
    if note is None:
        raise NotFound("credit_note")
    return note


def _answer(request: Request, note: CreditNote) -> Response:
    fresh = credit_notes_in_full(drafts=True).get(pk=note.pk)
    return Response({"credit_note": serialize_credit_note(fresh, _context(request))})


def _list(request: Request, queryset: QuerySet[CreditNote]) -> Response:
    """`queryset` holds drafts too: finalized notes are listed (as Lago), drafts with status=draft."""
    params = request.query_params
    queryset = queryset.filter(status=_choice(params, "status", CreditNoteStatus.values) or CreditNoteStatus.FINALIZED)
    for name, values in (
        ("credit_status", CreditStatus.values),
        ("refund_status", RefundStatus.values),
        ("reason", CreditNoteReason.values),
    ):
        value = _choice(params, name, values)
        if value is not None:
            queryset = queryset.filter(**{name: value})
    if params.get("currency"):
        queryset = queryset.filter(currency=params["currency"].upper())
    if params.get("invoice_number"):
        queryset = queryset.filter(invoice__number=params["invoice_number"])
    context = _context(request)

    def serialize(page: Iterable[CreditNote]) -> list[dict[str, Any]]:
        return [serialize_credit_note(note, context) for note in page]

    return paginated(request, queryset, "credit_notes", serialize, many=True)


_FILTERS = [
    OpenApiParameter("external_customer_id", str),
    OpenApiParameter(
        "status", str, enum=CreditNoteStatus.values, description="finalized (the default, as Lago) or draft (Tollgate)"
    ),
    OpenApiParameter("credit_status", str, enum=CreditStatus.values),
    OpenApiParameter("refund_status", str, enum=RefundStatus.values),
    OpenApiParameter("reason", str),
    OpenApiParameter("currency", str),
    OpenApiParameter("invoice_number", str),
    OpenApiParameter("page", int),
    OpenApiParameter("per_page", int),
]


class CreditNotesView(_CreditNotesView):
    @extend_schema(operation_id="findAllCreditNotes", parameters=_FILTERS, responses={200: _OBJECT})
    def get(self, request: Request) -> Response:
        queryset = credit_notes_in_full(drafts=True)
        external_customer_id = request.query_params.get("external_customer_id")
        if external_customer_id:
            queryset = queryset.filter(customer__external_id=external_customer_id)
        return _list(request, queryset)

    @extend_schema(
        operation_id="createCreditNote",
        request=inline_serializer("CreateCreditNoteRequest", fields={"credit_note": CreditNoteInput()}),
        responses={200: _OBJECT, 404: _ERROR, 405: _ERROR, 422: _ERROR},
    )
    def post(self, request: Request) -> Response:
        invoice, parsed, items = _parse_items_request(request, CreditNoteInput)
        currency = invoice.currency
        note = credit_notes.credit_note_create(
            invoice=invoice,
            reason=parsed.get("reason") or "other",
            description=parsed.get("description") or "",
            items=items,
            credit_amount=_cents_or_none(parsed.get("credit_amount_cents"), currency),
            refund_amount=_cents_or_none(parsed.get("refund_amount_cents"), currency),
            actor=actor_of(request),
        )
        if parsed.get("metadata"):
            note = credit_note_metadata.credit_note_metadata_set(
                credit_note=note, metadata=parsed["metadata"], merge=False
            )
        return _answer(request, note)


class CreditNoteEstimateView(_CreditNotesView):
    @extend_schema(
        operation_id="estimateCreditNote",
        request=inline_serializer("EstimateCreditNoteRequest", fields={"credit_note": CreditNoteEstimateInput()}),
        responses={200: _OBJECT, 404: _ERROR, 405: _ERROR, 422: _ERROR},
    )
    def post(self, request: Request) -> Response:
        invoice, _, items = _parse_items_request(request, CreditNoteEstimateInput)
        estimate = credit_notes.credit_note_estimate(invoice=invoice, items=items)
        return Response({"estimated_credit_note": serialize_estimate(invoice, estimate)})


class CreditNoteUpdateInput(serializers.Serializer):
    refund_status = serializers.ChoiceField(choices=[RefundStatus.SUCCEEDED, RefundStatus.FAILED])


class CreditNoteView(_CreditNotesView):
    @extend_schema(
        operation_id="findCreditNote",
        responses={200: _OBJECT, 404: _ERROR},
        description="A credit note; a draft too (Tollgate: a late-usage decrease waiting for finance).",
    )
    def get(self, request: Request, credit_note_id: str) -> Response:
        note = _credit_note(credit_note_id, drafts=True)
        return Response({"credit_note": serialize_credit_note(note, _context(request))})

    @extend_schema(**corrections_api.CREDIT_NOTE_DISCARD_SCHEMA)
    def delete(self, request: Request, credit_note_id: str) -> Response:
        """Tollgate: discard a draft credit note (a late-usage decrease), with a reason."""
        note = _credit_note(credit_note_id, drafts=True)
        corrections_api.credit_note_discard(
            credit_note=note, reason=corrections_api.discard_reason(request, "credit_note"), actor=actor_of(request)
        )
        return Response({"credit_note": {"lago_id": str(note.pk), "status": "discarded"}})

    @extend_schema(
        operation_id="updateCreditNote",
        request=inline_serializer("CreditNoteUpdate", {"credit_note": CreditNoteUpdateInput()}),
        responses={200: _OBJECT, 404: _ERROR, 405: _ERROR, 422: _ERROR},
    )
    def put(self, request: Request, credit_note_id: str) -> Response:
        """Lago's PUT /credit_notes/{id}: record a refund's outcome. `succeeded` is how finance
        says it refunded by hand (refused while Stripe holds the refund); `failed` records a
        refund that did not go through."""
        parsed = _parse(CreditNoteUpdateInput, unwrap(request, "credit_note"))
        note = _credit_note(credit_note_id)
        if note.refund_status is None:
            raise InvoicingError.field("refund_status", "no_refund")
        if parsed["refund_status"] == RefundStatus.SUCCEEDED:
            note = credit_note_refunds.credit_note_refund_mark_paid(credit_note=note, actor=actor_of(request))
        else:
            note = credit_note_refunds.credit_note_refund_status_update(
                credit_note=note, status=RefundStatus.FAILED, actor=actor_of(request), reason="set through the API"
            )
        return _answer(request, note)


class CreditNoteVoidView(_CreditNotesView):
    patch_as_put = False  # Lago: `put :void`, no PATCH

    @extend_schema(operation_id="voidCreditNote", request=None, responses={200: _OBJECT, 404: _ERROR, 405: _ERROR})
    def put(self, request: Request, credit_note_id: str) -> Response:
        note = credit_notes.credit_note_void(credit_note=_credit_note(credit_note_id), actor=actor_of(request))
        return _answer(request, note)


class CreditNoteFinalizeView(_CreditNotesView):
    patch_as_put = False  # as PUT /invoices/{id}/finalize

    @extend_schema(
        operation_id="finalizeCreditNote",
        request=None,
        responses={200: _OBJECT, 404: _ERROR, 405: _ERROR, 422: _ERROR},
        description="Tollgate: finalize a draft credit note (a late-usage decrease under the review policy): "
        "priced again, numbered, its credit available. Its correction is issued whole (its correction invoice "
        "too). A finalized note is answered unchanged.",
    )
    def put(self, request: Request, credit_note_id: str) -> Response:
        note = corrections_api.credit_note_finalize(
            credit_note=_credit_note(credit_note_id, drafts=True), actor=actor_of(request)
        )
        return _answer(request, note)


class CreditNoteDownloadView(_CreditNotesView):
    @extend_schema(operation_id="downloadCreditNote", request=None, responses={200: _OBJECT, 404: _ERROR})
    def post(self, request: Request, credit_note_id: str) -> Response:
        note = _credit_note(credit_note_id)
        if not note.file:
            # Lago answers empty while a job renders it; rendering here answers the link at once.
            pdf.credit_note_pdf_render(credit_note=note)
        return _answer(request, note)


class CreditNoteDownloadPdfView(CreditNoteDownloadView):
    @extend_schema(operation_id="downloadCreditNotePdf", request=None, responses={200: _OBJECT, 404: _ERROR})
    def post(self, request: Request, credit_note_id: str) -> Response:
        return super().post(request, credit_note_id)


class CustomerCreditNotesView(_CreditNotesView):
    resource_name = "customer"

    @extend_schema(operation_id="findAllCustomerCreditNotes", parameters=_FILTERS[1:], responses={200: _OBJECT})
    def get(self, request: Request, external_id: str) -> Response:
        customer = Customer.live.filter(external_id=external_id).first()
        if customer is None:
            raise NotFound("customer")
        return _list(request, credit_notes_in_full(drafts=True).filter(customer=customer))


def _finalized_note(credit_note_id: str) -> CreditNote:
    return _credit_note(credit_note_id)


def _metadata_body(request: Request) -> dict[str, Any]:
    metadata = request.data.get("metadata") if isinstance(request.data, dict) else None
    if not isinstance(metadata, dict):
        raise BadRequest("param is missing or the value is empty: metadata")
    return metadata


class CreditNoteMetadataView(_CreditNotesView):
    """Lago's /credit_notes/{id}/metadata: replace (POST), merge (PATCH, PUT), delete all (DELETE)."""

    @extend_schema(operation_id="replaceCreditNoteMetadata", request=OpenApiTypes.OBJECT, responses={200: _OBJECT})
    def post(self, request: Request, credit_note_id: str) -> Response:
        note = credit_note_metadata.credit_note_metadata_set(
            credit_note=_finalized_note(credit_note_id), metadata=_metadata_body(request), merge=False
        )
        return Response({"metadata": note.metadata or None})

    @extend_schema(operation_id="mergeCreditNoteMetadata", request=OpenApiTypes.OBJECT, responses={200: _OBJECT})
    def put(self, request: Request, credit_note_id: str) -> Response:
        note = credit_note_metadata.credit_note_metadata_set(
            credit_note=_finalized_note(credit_note_id), metadata=_metadata_body(request), merge=True
        )
        return Response({"metadata": note.metadata or None})

    @extend_schema(operation_id="mergeCreditNoteMetadataPatch", request=OpenApiTypes.OBJECT, responses={200: _OBJECT})
    def patch(self, request: Request, credit_note_id: str) -> Response:
        return self.put(request, credit_note_id)

    @extend_schema(operation_id="deleteAllCreditNoteMetadata", responses={200: _OBJECT})
    def delete(self, request: Request, credit_note_id: str) -> Response:
        note = credit_note_metadata.credit_note_metadata_delete(credit_note=_finalized_note(credit_note_id))
        return Response({"metadata": note.metadata or None})


class CreditNoteMetadataKeyView(_CreditNotesView):
    @extend_schema(operation_id="deleteCreditNoteMetadataKey", responses={200: _OBJECT, 404: _ERROR})
    def delete(self, request: Request, credit_note_id: str, key: str) -> Response:
        note = credit_note_metadata.credit_note_metadata_delete(credit_note=_finalized_note(credit_note_id), key=key)
        return Response({"metadata": note.metadata or None})


urlpatterns = [
    path("credit_notes", CreditNotesView.as_view(), name="credit-notes"),
    # Before `credit_notes/<id>`: "estimate" is not an id.
    path("credit_notes/estimate", CreditNoteEstimateView.as_view(), name="credit-note-estimate"),
    path("credit_notes/<str:credit_note_id>", CreditNoteView.as_view(), name="credit-note"),
    path("credit_notes/<str:credit_note_id>/void", CreditNoteVoidView.as_view(), name="credit-note-void"),
    path("credit_notes/<str:credit_note_id>/finalize", CreditNoteFinalizeView.as_view(), name="credit-note-finalize"),
    path("credit_notes/<str:credit_note_id>/download", CreditNoteDownloadView.as_view(), name="credit-note-download"),
    path(
        "credit_notes/<str:credit_note_id>/download_pdf",
        CreditNoteDownloadPdfView.as_view(),
        name="credit-note-download-pdf",
    ),
    path("credit_notes/<str:credit_note_id>/metadata", CreditNoteMetadataView.as_view(), name="credit-note-metadata"),
    path(
        "credit_notes/<str:credit_note_id>/metadata/<str:key>",
        CreditNoteMetadataKeyView.as_view(),
        name="credit-note-metadata-key",
    ),
    path("customers/<str:external_id>/credit_notes", CustomerCreditNotesView.as_view(), name="customer-credit-notes"),
]
