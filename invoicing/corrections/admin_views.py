"""The console's late-usage pages: a fee's events (lineage), issuing or discarding a correction
draft (its invoice, its draft credit note) after a confirmation page, the discard with a required
reason, what-if re-rating an invoice under another plan, and the events reported too late.
Each calls the same service as the API and checks the change permission on the server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from billing_project.local_time import format_instant
from billing_project.money import format_money, from_cents
from customers.models import Organization
from metrics.models import event_lago_id
from plans.models import Plan

from .. import audit, documents
from ..admin_views import CHANGE_PERMISSION, VIEW_PERMISSION, actor_of, error_in_words
from ..errors import InvoicingError
from ..models import CreditNote, CreditNoteStatus, Fee, Invoice, InvoiceStatus, InvoiceType
from .api import fee_events, invoice_discard
from .models import Correction, CorrectionStatus
from .rerate import correction_discard, correction_issue
from .selectors import too_late_event_rows
from .whatif import invoice_rerate_under_plan

EVENTS_PER_PAGE = 100


def _invoice_url(invoice_id: Any) -> str:
    return reverse("admin:invoicing_invoice_change", args=[invoice_id])


def fee_events_view(model_admin: admin.ModelAdmin, request: HttpRequest, fee_id: str) -> HttpResponse:
    """The events a fee counted, oldest first, a page at a time."""
    fee = get_object_or_404(Fee.objects.select_related("invoice", "charge__billable_metric"), pk=fee_id)
    page = Paginator(fee_events(fee), EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Events of {documents.fee_line_name(fee)}",
        "opts": Invoice._meta,
        "fee": fee,
        "fee_amount": format_money(fee.amount, fee.currency),
        "invoice_url": _invoice_url(fee.invoice_id) if fee.invoice_id else None,
        "page": page,
        "rows": [
            {
                "lago_id": event_lago_id(e.id),
                "transaction_id": e.transaction_id,
                "timestamp": e.timestamp,
                "properties": e.properties,
                "received": e.created_at,
            }
            for e in page.object_list
        ],
    }
    return TemplateResponse(request, "admin/tollgate/fee_events.html", context)


TOO_LATE_DAYS = (1, 7, 30, 90)
TOO_LATE_LIMIT = 500


def too_late_events_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    """Events received for a finalized period that ended longer ago than the organization's
    late_usage_window_days: never billed, listed here as in the events.errors digest."""
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    try:
        days = int(request.GET.get("days", 7))
    except ValueError:
        days = 7
    days = days if days in TOO_LATE_DAYS else 7
    now = timezone.now()
    rows = too_late_event_rows(received_from=now - timedelta(days=days), received_to=now, limit=TOO_LATE_LIMIT)
    organization = Organization.current()
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Events too late to be billed",
        "opts": Invoice._meta,
        "days": days,
        "day_choices": TOO_LATE_DAYS,
        "window_days": organization.late_usage_window_days,
        "limit": TOO_LATE_LIMIT,
        "rows": [
            {
                "lago_id": event_lago_id(row.id),
                "transaction_id": row.transaction_id,
                "external_subscription_id": row.external_subscription_id,
                "code": row.code,
                "timestamp": format_instant(row.timestamp, organization.timezone or "UTC"),
                "received": format_instant(row.received_at, organization.timezone or "UTC"),
                "period_ended": format_instant(row.period_ended_at, organization.timezone or "UTC"),
                "invoice": row.invoice_number,
                "invoice_url": _invoice_url(row.invoice_id),
            }
            for row in rows
        ],
    }
    return TemplateResponse(request, "admin/tollgate/too_late_events.html", context)


class DiscardForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=audit.REASON_MAX_LENGTH,
        help_text="Kept in the original invoice's audit trail.",
    )


def discard_view(model_admin: admin.ModelAdmin, request: HttpRequest, invoice_id: str) -> HttpResponse:
    """Discard a correction draft: its late events are handled, never proposed again."""
    if not request.user.has_perm(CHANGE_PERMISSION):
        raise PermissionDenied
    invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=invoice_id)
    form = DiscardForm(request.POST if request.method == "POST" else None)
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": f"Discard correction: {invoice}",
        "opts": Invoice._meta,
        "invoice": invoice,
        "invoice_url": _invoice_url(invoice.pk),
        "explanation": "Discarding removes this correction draft. The late events it priced are marked handled "
        "and never proposed again; the reason is kept in the original invoice's audit trail.",
        "total": format_money(invoice.total_amount, invoice.currency),
        "due": format_money(invoice.total_due_amount, invoice.currency),
        "form": form,
        "button": "Discard correction",
        "error": None,
    }
    if request.method == "POST" and form.is_valid():
        try:
            correction = invoice_discard(invoice=invoice, reason=form.cleaned_data["reason"], actor=actor_of(request))
        except InvoicingError as error:
            context["error"] = error_in_words(error)
        else:
            original = correction.original_invoice
            model_admin.log_change(request, original, "Correction discarded")
            model_admin.message_user(request, f"Correction of {original} discarded.", messages.SUCCESS)
            return HttpResponseRedirect(_invoice_url(original.pk))
    return TemplateResponse(request, "admin/tollgate/invoice_confirm.html", context)


def _correction_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    correction: Correction,
    *,
    title: str,
    explanation: str,
    form: forms.Form | None,
) -> dict[str, Any]:
    """The context of a correction's confirmation page: what it proposes, on which original."""
    original = correction.original_invoice
    currency = original.currency
    note = correction.credit_note
    return {
        **model_admin.admin_site.each_context(request),
        "title": f"{title}: correction of {original}",
        "opts": Invoice._meta,
        "original": original,
        "invoice_url": _invoice_url(original.pk),
        "correction": correction,
        "increase": format_money(correction.invoice.total_amount, currency) if correction.invoice else None,
        "correction_invoice_url": _invoice_url(correction.invoice_id) if correction.invoice_id else None,
        "decrease": format_money(note.total_amount, currency) if note else None,
        "credit_note_url": _credit_note_url(note.pk) if note else None,
        "explanation": explanation,
        "form": form,
        "button": title,
        "error": None if correction.status == CorrectionStatus.DRAFT else "This correction is not a draft any more.",
    }


def _credit_note_url(credit_note_id: Any) -> str:
    return reverse("admin:invoicing_creditnote_change", args=[credit_note_id])


def correction_issue_view(model_admin: admin.ModelAdmin, request: HttpRequest, correction_id: str) -> HttpResponse:
    """Issue a draft correction after a confirmation page: its invoice finalized (its number
    taken), its draft credit note finalized (numbered, its credit available to the customer)."""
    if not request.user.has_perm(CHANGE_PERMISSION):
        raise PermissionDenied
    correction = get_object_or_404(
        Correction.objects.select_related("original_invoice__customer", "invoice", "credit_note"), pk=correction_id
    )
    context = _correction_page(
        model_admin,
        request,
        correction,
        title="Issue correction",
        explanation="Issuing finalizes the correction: its invoice takes the next number of the series and is "
        "collected like any invoice; its credit note takes the original's next credit note number and its credit "
        "is consumed by the customer's next invoices. The original invoice does not change.",
        form=None,
    )
    if request.method == "POST" and not context["error"]:
        try:
            correction_issue(correction=correction, actor=actor_of(request))
        except InvoicingError as error:
            context["error"] = error_in_words(error)
        else:
            model_admin.log_change(request, correction.original_invoice, "Correction issued")
            model_admin.message_user(request, "Correction issued.", messages.SUCCESS)
            return HttpResponseRedirect(_invoice_url(correction.original_invoice_id))
    return TemplateResponse(request, "admin/tollgate/correction_confirm.html", context)


def correction_discard_view(model_admin: admin.ModelAdmin, request: HttpRequest, correction_id: str) -> HttpResponse:
    """Discard a draft correction (its invoice and its credit note) with a required reason."""
    if not request.user.has_perm(CHANGE_PERMISSION):
        raise PermissionDenied
    correction = get_object_or_404(
        Correction.objects.select_related("original_invoice__customer", "invoice", "credit_note"), pk=correction_id
    )
    form = DiscardForm(request.POST if request.method == "POST" else None)
    context = _correction_page(
        model_admin,
        request,
        correction,
        title="Discard correction",
        explanation="Discarding removes this correction's drafts (its invoice, its credit note). The late events "
        "it priced are marked handled and never proposed again; the reason is kept in the original invoice's "
        "audit trail.",
        form=form,
    )
    if request.method == "POST" and not context["error"] and form.is_valid():
        try:
            correction_discard(correction=correction, reason=form.cleaned_data["reason"], actor=actor_of(request))
        except InvoicingError as error:
            context["error"] = error_in_words(error)
        else:
            model_admin.log_change(request, correction.original_invoice, "Correction discarded")
            model_admin.message_user(
                request, f"Correction of {correction.original_invoice} discarded.", messages.SUCCESS
            )
            return HttpResponseRedirect(_invoice_url(correction.original_invoice_id))
    return TemplateResponse(request, "admin/tollgate/correction_confirm.html", context)


def credit_note_actions(note: CreditNote, request: HttpRequest) -> list[dict[str, str]]:
    """A draft credit note's buttons (a late-usage decrease): issue or discard its correction."""
    if note.status != CreditNoteStatus.DRAFT or not request.user.has_perm(CHANGE_PERMISSION):
        return []
    correction = Correction.objects.filter(credit_note=note, status=CorrectionStatus.DRAFT).first()
    if correction is None:
        return []
    return [
        {"label": "Finalize", "url": reverse("admin:invoicing_correction_issue", args=[correction.pk])},
        {"label": "Discard", "url": reverse("admin:invoicing_correction_discard", args=[correction.pk])},
    ]


class RerateForm(forms.Form):
    plan_code = forms.ChoiceField(label="Plan")

    def __init__(self, *args: Any, currency: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plans = Plan.objects.filter(deleted_at__isnull=True, amount_currency=currency).order_by("name")
        field = self.fields["plan_code"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(p.code, f"{p.name} ({p.code})") for p in plans]


def rerate_view(model_admin: admin.ModelAdmin, request: HttpRequest, invoice_id: str) -> HttpResponse:
    """What-if: the invoice's periods priced under another plan, with today's usage; saved nowhere."""
    invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=invoice_id)
    form = RerateForm(request.POST if request.method == "POST" else None, currency=invoice.currency)
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": f"What if: {invoice} under another plan",
        "opts": Invoice._meta,
        "invoice": invoice,
        "invoice_url": _invoice_url(invoice.pk),
        "form": form,
        "result": None,
        "error": None,
    }
    if request.method == "POST" and form.is_valid():
        try:
            result = invoice_rerate_under_plan(invoice=invoice, plan_code=form.cleaned_data["plan_code"])
        except InvoicingError as error:
            context["error"] = error_in_words(error)
        else:
            currency = result["currency"]

            def money(cents: int) -> str:
                return format_money(from_cents(cents, currency), currency)

            context["result"] = {
                "plan_code": result["plan_code"],
                "fees": [{**fee, "amount": money(fee["amount_cents"])} for fee in result["fees"]],
                "fees_amount": money(result["fees_amount_cents"]),
                "taxes_amount": money(result["taxes_amount_cents"]),
                "total_amount": money(result["total_amount_cents"]),
                "invoiced_fees_amount": money(result["invoiced_fees_amount_cents"]),
                "invoiced_total_amount": money(result["invoiced_total_amount_cents"]),
            }
    return TemplateResponse(request, "admin/tollgate/invoice_rerate.html", context)


def corrections_of(invoice: Invoice, request: HttpRequest) -> list[dict[str, Any]]:
    """The invoice page's late-usage section: its corrections, or the invoice it corrects."""
    rows = []
    can_change = request.user.has_perm(CHANGE_PERMISSION)
    for correction in Correction.objects.filter(original_invoice=invoice).select_related("invoice", "credit_note"):
        decrease = sum((from_cents(0, invoice.currency),) + tuple(_amount(d) for d in correction.decreases))
        note = correction.credit_note
        draft = can_change and correction.status == CorrectionStatus.DRAFT
        rows.append(
            {
                "id": str(correction.pk),
                "status": correction.get_status_display(),
                "events_count": correction.events_count,
                "invoice_url": _invoice_url(correction.invoice_id) if correction.invoice_id else None,
                "invoice": str(correction.invoice) if correction.invoice_id else None,
                "increase": format_money(correction.invoice.fees_amount, invoice.currency)
                if correction.invoice is not None
                else None,
                "decrease": format_money(decrease, invoice.currency) if correction.decreases else None,
                "credit_note": (note.number or "Draft credit note") if note is not None else None,
                "credit_note_url": _credit_note_url(note.pk) if note is not None else None,
                "discard_reason": correction.discard_reason,
                "issue_url": reverse("admin:invoicing_correction_issue", args=[correction.pk]) if draft else None,
                "discard_url": reverse("admin:invoicing_correction_discard", args=[correction.pk]) if draft else None,
            }
        )
    return rows


def _amount(decrease: dict[str, Any]) -> Any:
    from decimal import Decimal

    return Decimal(str(decrease.get("amount", "0")))


def late_usage_buttons(invoice: Invoice, request: HttpRequest) -> list[dict[str, str]]:
    """The invoice page's late-usage buttons: discard a correction draft; what-if re-rating."""
    buttons = []
    if (
        request.user.has_perm(CHANGE_PERMISSION)
        and invoice.invoice_type == InvoiceType.CORRECTION
        and invoice.status == InvoiceStatus.DRAFT
    ):
        buttons.append(
            {"label": "Discard correction", "url": reverse("admin:invoicing_invoice_discard", args=[invoice.pk])}
        )
    if invoice.invoice_type == InvoiceType.SUBSCRIPTION:
        buttons.append({"label": "What if", "url": reverse("admin:invoicing_invoice_rerate", args=[invoice.pk])})
    return buttons
