"""The invoice page's actions in the finance console, each through a confirmation page that
says what will happen, each calling the same service as the API: finalize, void (with a required
reason), render the PDF again. Errors are shown in words, never as codes. Every view checks the
change permission on the server, so a forged POST from a view-only user is refused.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from djmoney.money import Money

from billing_project.money import decimal_places, format_money

from . import audit, credit_notes, documents, pdf, services
from .errors import InvoicingError
from .models import CreditNoteItem, CreditNoteReason, Fee, Invoice, InvoiceStatus, InvoiceType, PaymentStatus

CHANGE_PERMISSION = "invoicing.change_invoice"
VIEW_PERMISSION = "invoicing.view_invoice"

# Service codes in the words finance staff read.
ERROR_WORDS = {
    "is_not_draft": "This invoice is not a draft any more.",
    "is_draft": "This invoice is still a draft: finalize it first.",
    "not_voidable": "Only a finalized invoice that is not paid can be voided.",
    "invoice_not_finalized": "This invoice is not finalized.",
    "invalid_type_or_status": "This invoice cannot take that action in its state.",
    "no_voidable_amount": "Nothing is left to void.",
    "no_refund": "This credit note refunds nothing.",
    "refund_handled_by_provider": "The payment provider handles this refund.",
    "invalid_refund_status": "The refund is not pending.",
    "value_is_mandatory": "A value is required.",
    "value_is_too_long": "That text is too long.",
}


def error_in_words(error: InvoicingError) -> str:
    if error.details:
        return " ".join(
            f"{field.replace('_', ' ').capitalize()}: {ERROR_WORDS.get(code, code.replace('_', ' '))}"
            for field, codes in error.details.items()
            for code in codes
        )
    return ERROR_WORDS.get(error.code, error.code.replace("_", " ").capitalize() + ".")


def actor_of(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


class VoidForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=audit.REASON_MAX_LENGTH,
        help_text="Kept in the invoice's audit trail.",
    )


def available_actions(invoice: Invoice, request: HttpRequest) -> list[dict[str, str]]:
    """The buttons of the invoice page, for a user who may change invoices (none otherwise)."""
    user = request.user
    buttons: list[dict[str, str]] = []
    can_change = user.has_perm(CHANGE_PERMISSION)
    if can_change and invoice.status == InvoiceStatus.DRAFT:
        buttons.append({"label": "Finalize", "url": reverse("admin:invoicing_invoice_finalize", args=[invoice.pk])})
    if invoice.status == InvoiceStatus.FINALIZED and invoice.payment_status != PaymentStatus.SUCCEEDED:
        if user.has_perm("payments.add_payment") and invoice.total_due_amount > 0:
            buttons.append(
                {"label": "Record payment", "url": reverse("admin:console-record-payment", args=[invoice.pk])}
            )
        if user.has_perm("payments.add_payment") and invoice.customer.payment_provider == "stripe":
            buttons.append({"label": "Retry payment", "url": reverse("admin:console-retry-payment", args=[invoice.pk])})
        if can_change:
            buttons.append({"label": "Void", "url": reverse("admin:invoicing_invoice_void", args=[invoice.pk])})
    if (
        user.has_perm(CREDIT_NOTE_PERMISSION)
        and invoice.status == InvoiceStatus.FINALIZED
        and invoice.invoice_type != InvoiceType.CREDIT
    ):
        buttons.append(
            {"label": "Credit note", "url": reverse("admin:invoicing_invoice_credit_note", args=[invoice.pk])}
        )
    if invoice.status == InvoiceStatus.DRAFT and user.has_perm(VIEW_PERMISSION):
        buttons.append(
            {"label": "Preview PDF (draft)", "url": reverse("admin:invoicing_invoice_preview_pdf", args=[invoice.pk])}
        )
    if can_change and invoice.status in (InvoiceStatus.FINALIZED, InvoiceStatus.VOIDED):
        buttons.append(
            {"label": "Regenerate PDF", "url": reverse("admin:invoicing_invoice_regenerate_pdf", args=[invoice.pk])}
        )
    if invoice.file:
        buttons.append(
            {"label": "Download PDF", "url": reverse("invoicing-document", args=[pdf.sign_document(invoice)])}
        )
    return buttons


def _confirm_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    invoice_id: str,
    *,
    title: str,
    explanation: str,
    done: str,
    call: Callable[[Invoice, dict[str, Any]], Any],
    form_class: type[forms.Form] | None = None,
    refusal: Callable[[Invoice], str | None] = lambda invoice: None,
) -> HttpResponse:
    if not request.user.has_perm(CHANGE_PERMISSION):
        raise PermissionDenied
    invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=invoice_id)
    invoice_url = reverse("admin:invoicing_invoice_change", args=[invoice.pk])
    form = form_class(request.POST if request.method == "POST" else None) if form_class else None
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": f"{title}: {invoice}",
        "opts": Invoice._meta,
        "invoice": invoice,
        "invoice_url": invoice_url,
        "explanation": explanation,
        "total": format_money(invoice.total_amount, invoice.currency),
        "due": format_money(invoice.total_due_amount, invoice.currency),
        "form": form,
        "button": title,
    }
    context["error"] = refusal(invoice)
    if request.method == "POST" and not context["error"] and (form is None or form.is_valid()):
        try:
            call(invoice, form.cleaned_data if form else {})
        except InvoicingError as error:
            context["error"] = error_in_words(error)
        else:
            model_admin.log_change(request, invoice, done.capitalize())
            invoice.refresh_from_db()
            model_admin.message_user(request, f"{invoice}: {done}.", messages.SUCCESS)
            return HttpResponseRedirect(invoice_url)
    return TemplateResponse(request, "admin/tollgate/invoice_confirm.html", context)


def finalize_view(model_admin: admin.ModelAdmin, request: HttpRequest, invoice_id: str) -> HttpResponse:
    return _confirm_page(
        model_admin,
        request,
        invoice_id,
        title="Finalize",
        explanation="Finalizing refreshes the draft from usage, gives it its number, freezes it, renders its PDF "
        "and starts collecting the payment. A finalized invoice can no longer be edited.",
        done="finalized",
        call=lambda invoice, _: services.invoice_finalize(invoice=invoice, actor=actor_of(request)),
        # The service answers a second finalize with "nothing to do"; the page says so instead.
        refusal=lambda invoice: None if invoice.status == InvoiceStatus.DRAFT else ERROR_WORDS["is_not_draft"],
    )


def void_view(model_admin: admin.ModelAdmin, request: HttpRequest, invoice_id: str) -> HttpResponse:
    return _confirm_page(
        model_admin,
        request,
        invoice_id,
        title="Void",
        explanation="Voiding cancels the invoice: nothing is due on it any more, the credit it consumed goes back "
        "to its credit notes, and the reason is kept in its audit trail. This cannot be undone.",
        done="voided",
        call=lambda invoice, data: audit.invoice_void_with_reason(
            invoice=invoice, actor=actor_of(request), reason=data["reason"]
        ),
        form_class=VoidForm,
    )


def regenerate_pdf_view(model_admin: admin.ModelAdmin, request: HttpRequest, invoice_id: str) -> HttpResponse:
    def render(invoice: Invoice, _: dict[str, Any]) -> None:
        if invoice.status not in (InvoiceStatus.FINALIZED, InvoiceStatus.VOIDED):
            raise InvoicingError(code="is_draft")
        pdf.invoice_pdf_render(invoice=invoice, actor=actor_of(request))

    return _confirm_page(
        model_admin,
        request,
        invoice_id,
        title="Regenerate PDF",
        explanation="The PDF is rendered again from the invoice's frozen details; its amounts do not change.",
        done="PDF rendered",
        call=render,
    )


def preview_pdf_view(model_admin: admin.ModelAdmin, request: HttpRequest, invoice_id: str) -> HttpResponse:
    """A draft's PDF as it would be rendered now, inline, marked DRAFT; nothing is stored (a
    read: the view permission suffices)."""
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    invoice = get_object_or_404(Invoice, pk=invoice_id)
    if invoice.status != InvoiceStatus.DRAFT:
        messages.error(request, "Only a draft has a preview: a finalized invoice has its own PDF.")
        return HttpResponseRedirect(reverse("admin:invoicing_invoice_change", args=[invoice.pk]))
    response = HttpResponse(pdf.invoice_pdf_preview(invoice=invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="draft-{invoice.pk}.pdf"'
    # The admin already answers never-cache: a draft changes with usage, a stale copy misleads.
    return response


# --- Credit note -------------------------------------------------------------------------------

CREDIT_NOTE_PERMISSION = "invoicing.add_creditnote"

ERROR_WORDS.update(
    {
        "does_not_match_item_amounts": "Credit plus refund must equal the total of the items (taxes included).",
        "cannot_refund_unpaid_invoice": "Nothing was paid on this invoice, so nothing can be refunded.",
        "higher_than_remaining_invoice_amount": "That is more than what is left to credit or refund on this invoice.",
        "total_amount_must_be_positive": "Enter an amount to credit on at least one fee.",
        "value_is_invalid": "That value is not valid.",
    }
)


def _units(text: str, currency: str) -> Decimal | None:
    """An amount typed in currency units ("23.45", "1,023.45"); None when it is not one."""
    try:
        amount = Decimal((text or "0").replace(",", "").strip() or "0")
    except InvalidOperation:
        return None
    if amount < 0 or -amount.as_tuple().exponent > decimal_places(currency):  # type: ignore[operator]
        return None
    return amount


def credit_note_view(model_admin: admin.ModelAdmin, request: HttpRequest, invoice_id: str) -> HttpResponse:
    """A form listing each fee with what is left to credit on it; "Estimate" asks the estimate
    service (the API's) what the note would be, "Create credit note" issues it through
    credit_note_create (the API's). Refusals are explained in words."""
    if not request.user.has_perm(CREDIT_NOTE_PERMISSION):
        raise PermissionDenied
    invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=invoice_id)
    currency = invoice.currency
    invoice_url = reverse("admin:invoicing_invoice_change", args=[invoice.pk])
    fees = list(invoice.fees.select_related("charge__billable_metric", "subscription__plan", "add_on", "charge_filter"))
    credited = dict(
        CreditNoteItem.objects.filter(credit_note__in=credit_notes._counted_notes(invoice))
        .values("fee_id")
        .annotate(total=Sum("amount"))
        .values_list("fee_id", "total")
    )
    data = request.POST if request.method == "POST" else None
    errors: list[str] = []
    items: list[tuple[Fee | None, Decimal]] = []
    rows = []
    for fee in fees:
        creditable = max(fee.amount - (credited.get(fee.pk) or Decimal(0)), Decimal(0))
        typed = data.get(f"fee_{fee.pk}", "") if data else ""
        amount = _units(typed, currency) if data else Decimal(0)
        if amount is None:
            errors.append(f"{documents.fee_line_name(fee)}: enter an amount such as 12.34.")
        elif amount > creditable:
            errors.append(
                f"{documents.fee_line_name(fee)}: at most {format_money(creditable, currency)} is left to credit on it."
            )
        elif amount > 0:
            items.append((fee, amount))
        rows.append(
            {
                "name": f"fee_{fee.pk}",
                "line": documents.fee_line_name(fee),
                "amount": format_money(fee.amount, currency),
                "creditable": format_money(creditable, currency),
                "value": typed,
            }
        )
    reason = data.get("reason", "") if data else ""
    credit_text = data.get("credit_amount", "") if data else ""
    refund_text = data.get("refund_amount", "") if data else ""
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": f"Create credit note on {invoice}",
        "opts": Invoice._meta,
        "invoice": invoice,
        "invoice_url": invoice_url,
        "total": format_money(invoice.total_amount, currency),
        "paid": format_money(invoice.total_paid_amount, currency),
        "rows": rows,
        "reasons": CreditNoteReason.choices,
        "reason": reason,
        "description": data.get("description", "") if data else "",
        "credit_amount": credit_text,
        "refund_amount": refund_text,
        "errors": errors,
    }
    if data is None:
        return TemplateResponse(request, "admin/tollgate/credit_note_form.html", context)
    if not errors and not items:
        errors.append(ERROR_WORDS["total_amount_must_be_positive"])
    if not errors:
        try:
            estimate = credit_notes.credit_note_estimate(invoice=invoice, items=items)
        except InvoicingError as error:
            errors.append(error_in_words(error))
        else:
            context["estimate"] = {
                "sub_total": format_money(estimate.figures.sub_total_excluding_taxes, currency),
                "coupons": format_money(estimate.figures.coupons_adjustment, currency),
                "taxes": format_money(estimate.figures.taxes_amount, currency),
                "total": format_money(estimate.figures.total, currency),
                "max_creditable": format_money(estimate.max_creditable, currency),
                "max_refundable": format_money(estimate.max_refundable, currency),
            }
    if errors or "create" not in data:
        return TemplateResponse(request, "admin/tollgate/credit_note_form.html", context)
    credit_amount = _units(credit_text, currency) if credit_text.strip() else None
    refund_amount = _units(refund_text, currency) if refund_text.strip() else None
    if (credit_text.strip() and credit_amount is None) or (refund_text.strip() and refund_amount is None):
        errors.append("Enter the credit and refund amounts such as 12.34, or leave both empty to credit it all.")
        return TemplateResponse(request, "admin/tollgate/credit_note_form.html", context)
    if reason not in CreditNoteReason.values:
        errors.append("Choose a reason.")
        return TemplateResponse(request, "admin/tollgate/credit_note_form.html", context)
    try:
        note = credit_notes.credit_note_create(
            invoice=invoice,
            reason=reason,
            items=items,
            description=context["description"],
            credit_amount=credit_amount,
            refund_amount=refund_amount,
            actor=actor_of(request),
        )
    except InvoicingError as error:
        errors.append(error_in_words(error))
        return TemplateResponse(request, "admin/tollgate/credit_note_form.html", context)
    model_admin.log_change(request, invoice, f"Credit note {note.number} created")
    model_admin.message_user(
        request, f"{note.number}: credit note of {format_money(note.total_amount, currency)} created.", messages.SUCCESS
    )
    return HttpResponseRedirect(reverse("admin:invoicing_creditnote_change", args=[note.pk]))


# --- Billing run -------------------------------------------------------------------------------


def _plan_amount(amount: Any) -> str:
    """A plan's amount (django-money's Money at run time, typed as its Decimal by the stubs)."""
    money = cast(Money, amount)
    return format_money(money.amount, str(money.currency))


def billing_run_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    """Pick an instant (in the organization's timezone), preview what is due then (dry run: the
    selectors the run uses, nothing written), then run it: through Celery when a broker is
    configured, inline otherwise, reporting created, skipped and failed with reasons."""
    if not request.user.has_perm(CHANGE_PERMISSION):
        raise PermissionDenied
    from django.conf import settings
    from django.utils import timezone

    from customers.models import Organization

    from . import runs, selectors

    tz_name = Organization.current().timezone or "UTC"
    zone = zoneinfo.ZoneInfo(tz_name)
    data = request.POST if request.method == "POST" else None
    typed = (data.get("at", "") if data is not None else "") or f"{timezone.now().astimezone(zone):%Y-%m-%dT%H:%M}"
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": "Billing run",
        "opts": Invoice._meta,
        "at": typed,
        "timezone": tz_name,
        "uses_celery": bool(getattr(settings, "CELERY_BROKER_URL", ""))
        and not getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False),
    }
    if data is None:
        return TemplateResponse(request, "admin/tollgate/billing_run.html", context)
    try:
        at = datetime.fromisoformat(typed).replace(tzinfo=zone)
    except ValueError:
        context["error"] = "Enter the instant as a date and time."
        return TemplateResponse(request, "admin/tollgate/billing_run.html", context)
    due, billed = selectors.split_billed(selectors.due_subscriptions(at=at, include_billed=True))
    context["preview"] = [
        {
            "customer": item.subscription.customer.external_id,
            "subscription": item.subscription.external_id,
            "plan": item.subscription.plan.name,
            "reason": item.window.reason.replace("_", " "),
            "period": f"{item.window.from_datetime.astimezone(zone):%Y-%m-%d} to "
            f"{(item.window.to_datetime.astimezone(zone) - timedelta(microseconds=1)):%Y-%m-%d}",
            "estimate": _plan_amount(item.subscription.plan.amount) + " + usage",
        }
        for item in due
    ]
    context["skipped"] = [
        {"subscription": item.subscription.external_id, "why": "already billed for this period"} for item in billed
    ]
    if "run" not in data:
        return TemplateResponse(request, "admin/tollgate/billing_run.html", context)
    actor = actor_of(request)
    if context["uses_celery"]:
        from .tasks import bill_subscription_period

        for item in due:
            bill_subscription_period.delay(
                str(item.subscription.pk), item.window.reason, item.window.timestamp.isoformat()
            )
        model_admin.message_user(
            request, f"Queued {len(due)} billing tasks; {len(billed)} already billed.", messages.SUCCESS
        )
        return HttpResponseRedirect(reverse("admin:invoicing_invoice_changelist"))
    summary = runs.bill_due(at=at, actor=actor)
    context["result"] = {
        "created": summary.created,
        "skipped": summary.skipped,
        "failed": summary.failed,
        "errors": summary.errors,
    }
    context["preview"] = []
    return TemplateResponse(request, "admin/tollgate/billing_run.html", context)
