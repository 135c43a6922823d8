"""The console's late-usage pages: a fee's events (lineage), discarding a correction draft with a
required reason, issuing a draft decrease, and what-if re-rating an invoice under another plan.
Each calls the same service as the API and checks the change permission on the server."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from billing_project.money import format_money, from_cents
from metrics.models import event_lago_id
from plans.models import Plan

from .. import audit, documents
from ..admin_views import CHANGE_PERMISSION, actor_of, error_in_words
from ..errors import InvoicingError
from ..models import Fee, Invoice, InvoiceStatus, InvoiceType
from .api import fee_events, invoice_discard
from .models import Correction, CorrectionStatus
from .rerate import correction_issue
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


def correction_issue_view(model_admin: admin.ModelAdmin, request: HttpRequest, correction_id: str) -> HttpResponse:
    """Issue a draft correction (its invoice finalized, its decrease credited): POST only."""
    if not request.user.has_perm(CHANGE_PERMISSION) or request.method != "POST":
        raise PermissionDenied
    correction = get_object_or_404(Correction, pk=correction_id)
    try:
        correction_issue(correction=correction, actor=actor_of(request))
    except InvoicingError as error:
        model_admin.message_user(request, error_in_words(error), messages.ERROR)
    else:
        model_admin.message_user(request, "Correction issued.", messages.SUCCESS)
    return HttpResponseRedirect(_invoice_url(correction.original_invoice_id))


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
                "credit_note": str(correction.credit_note) if correction.credit_note_id else None,
                "discard_reason": correction.discard_reason,
                "issue_url": reverse("admin:invoicing_correction_issue", args=[correction.pk])
                if can_change and correction.status == CorrectionStatus.DRAFT
                else None,
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
