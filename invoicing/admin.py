"""The finance console: invoices with their fees, taxes, credits, credit notes and audit trail.

Issued documents are never edited here (nor deleted: without the delete permission, Django
offers no `delete_selected`): every form is read-only and every change is an action that calls
the same billing services as the API (finalize, refresh, void) or renders the PDF again,
reporting success or refusal per invoice and writing a LogEntry. Fees are read-only; credit
notes too, but for two actions (void what is left of the credit, mark a refund made by hand as
paid).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import DecimalField, ExpressionWrapper, F, Prefetch, Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from billing_project.admin import ReadOnlyAdmin
from billing_project.admin_export import CsvExportMixin
from billing_project.local_time import current_display_timezone, display_timezone, format_instant
from billing_project.money import format_money
from customers.models import Organization

from . import admin_views, analytics, audit, credit_note_refunds, credit_notes, documents, pdf, services
from .corrections import admin_views as correction_views
from .errors import InvoicingError
from .models import (
    CreditNote,
    CreditNoteAppliedTax,
    CreditNoteItem,
    Fee,
    Invoice,
    InvoiceAppliedTax,
    InvoiceEvent,
    InvoiceStatus,
    InvoiceSubscription,
)

# More per-object messages than this are summed up (a month-end batch of 500 would bury the page).
MAX_MESSAGES = 20


def _pdf_link(document: Invoice | CreditNote) -> str:
    if not document.file:
        return "-"
    # A relative link signed like the API's: valid TOLLGATE_PDF_LINK_MAX_AGE after the page loads.
    url = reverse("invoicing-document", args=[pdf.sign_document(document)])
    return format_html('<a href="{}" target="_blank" rel="noopener">PDF</a>', url)


def _day(instant: Any, *, exclusive: bool = False) -> str:
    """A period bound as a date in the organization's timezone (an exclusive end as its last day)."""
    tz_name = current_display_timezone() or Organization.current().timezone or "UTC"
    local = instant.astimezone(zoneinfo.ZoneInfo(tz_name))
    day: date = (local - timedelta(microseconds=1)).date() if exclusive else local.date()
    return f"{day:%Y-%m-%d}"


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


def _apply_each(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    documents: QuerySet,
    done: str,
    call: Callable[[Any], Any],
) -> None:
    """Run `call(document)` on each document in its own transaction (the service's), log what
    changed, and report each success and refusal (a summary line past MAX_MESSAGES of either).
    A success is named after what the call returns when it returns the document (a finalized
    draft has its number)."""
    succeeded: list[str] = []
    refused: list[str] = []
    for document in documents:
        try:
            result = call(document)
        except InvoicingError as error:
            refused.append(f"{document}: {admin_views.error_in_words(error)}")
            continue
        modeladmin.log_change(request, document, done.capitalize())
        succeeded.append(str(result if isinstance(result, type(document)) else document))
    for line in succeeded[:MAX_MESSAGES]:
        modeladmin.message_user(request, f"{line}: {done}", messages.SUCCESS)
    for line in refused[:MAX_MESSAGES]:
        modeladmin.message_user(request, f"{line} (not {done})", messages.WARNING)
    hidden = max(len(succeeded) - MAX_MESSAGES, 0) + max(len(refused) - MAX_MESSAGES, 0)
    if hidden:
        modeladmin.message_user(
            request, f"{len(succeeded)} {done}, {len(refused)} refused ({hidden} not listed)", messages.INFO
        )


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class InvoiceSubscriptionInline(_ReadOnlyInline):
    model = InvoiceSubscription
    verbose_name = "billing period"
    fields = ("subscription", "invoicing_reason", "from_datetime", "to_datetime", "charges_from_datetime")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("subscription")


class FeeInline(_ReadOnlyInline):
    model = Fee
    fields = (
        "line",
        "fee_type",
        "units",
        "events_count",
        "events",
        "unit_price",
        "amount_money",
        "precise_amount",
        "taxes",
    )
    readonly_fields = fields

    @admin.display(description="events")
    def events(self, fee: Fee) -> str:
        """A period-end charge's events (its lineage: exactly those its units count)."""
        if fee.fee_type != "charge" or fee.pay_in_advance:
            return "-"
        url = reverse("admin:invoicing_fee_events", args=[fee.pk])
        return format_html("<a href='{}' class='fee-events'>{} events</a>", url, fee.events_count)

    @admin.display(description="unit amount")
    def unit_price(self, fee: Fee) -> str:
        return documents.format_precise(fee.unit_amount, fee.currency)

    @admin.display(description="amount")
    def amount_money(self, fee: Fee) -> str:
        return format_money(fee.amount, fee.currency)

    @admin.display(description="taxes")
    def taxes(self, fee: Fee) -> str:
        return format_money(fee.taxes_amount, fee.currency)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("charge__billable_metric", "charge_filter", "subscription__plan", "add_on")
        )

    @admin.display(description="line")
    def line(self, fee: Fee) -> str:
        return documents.fee_line_name(fee)


class InvoiceAppliedTaxInline(_ReadOnlyInline):
    model = InvoiceAppliedTax
    verbose_name = "tax"
    fields = ("tax_code", "tax_name", "tax_rate", "fees_amount", "amount")
    readonly_fields = fields


class CreditNoteInline(_ReadOnlyInline):
    model = CreditNote
    fields = ("number_link", "status", "reason", "credit_status", "refund_status", "total", "issuing_date")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # A draft (a late-usage decrease waiting for finance) is shown on its invoice, marked draft.
        queryset = CreditNote.all_objects.get_queryset()
        return queryset if self.has_view_or_change_permission(request) else queryset.none()

    @admin.display(description="total")
    def total(self, note: CreditNote) -> str:
        return format_money(note.total_amount, note.currency)

    @admin.display(description="number")
    def number_link(self, note: CreditNote) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:invoicing_creditnote_change", args=[note.pk]), note)


class InvoiceEventInline(_ReadOnlyInline):
    model = InvoiceEvent
    fk_name = "invoice"
    verbose_name = "history entry"
    verbose_name_plural = "history"
    fields = ("created_at", "kind", "actor", "payload")
    readonly_fields = fields


_DUE = ExpressionWrapper(
    F("total_amount") - F("total_paid_amount"), output_field=DecimalField(max_digits=40, decimal_places=20)
)


class InvoicePresetFilter(admin.SimpleListFilter):
    """The questions finance asks most: issued last month, past due, not paid yet."""

    title = "preset"
    parameter_name = "preset"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("last_month", "Issued last month"), ("past_due", "Past due"), ("unpaid", "Unpaid")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "last_month":
            this_month = analytics.month_start(timezone.localdate())
            return queryset.filter(
                status=InvoiceStatus.FINALIZED,
                issuing_date__gte=analytics.add_months(this_month, -1),
                issuing_date__lt=this_month,
            )
        if self.value() == "past_due":
            return queryset.filter(analytics.outstanding_q(), payment_overdue=True)
        if self.value() == "unpaid":
            return queryset.filter(analytics.outstanding_q())
        return queryset


class VoidReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=audit.REASON_MAX_LENGTH)


@admin.register(Invoice)
class InvoiceAdmin(CsvExportMixin, ReadOnlyAdmin):
    change_form_template = "admin/tollgate/invoice_change_form.html"
    list_display = [
        "number_or_id",
        "customer_link",
        "invoice_type",
        "status",
        "payment_status",
        "payment_overdue",
        "total",
        "due",
        "billing_period",
        "issuing_date",
        "payment_due_date",
        "pdf",
    ]
    csv_fields = [
        "number",
        "id",
        "customer__external_id",
        "customer__name",
        "invoice_type",
        "status",
        "payment_status",
        "payment_overdue",
        "currency",
        "total_amount",
        "total_paid_amount",
        "issuing_date",
        "payment_due_date",
    ]
    csv_money_fields = ["total_amount", "total_paid_amount"]
    list_filter = [
        InvoicePresetFilter,
        "status",
        "payment_status",
        "invoice_type",
        "payment_overdue",
        "currency",
        ("issuing_date", admin.DateFieldListFilter),
    ]
    search_fields = ["number", "=customer__external_id", "customer__name"]
    list_select_related = ["customer"]
    date_hierarchy = "issuing_date"
    ordering = ["-issuing_date", "-created_at"]
    list_per_page = 50
    show_full_result_count = False  # a COUNT(*) over every invoice on each page is not worth it
    inlines = [InvoiceSubscriptionInline, FeeInline, InvoiceAppliedTaxInline, CreditNoteInline, InvoiceEventInline]
    actions = ["finalize", "refresh", "void", "regenerate_pdf"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "number",
                    "customer_link",
                    "invoice_type",
                    "corrected_invoice_link",
                    "status",
                    "payment_status",
                    "payment_overdue",
                    "currency",
                    "issuing_date",
                    "payment_due_date",
                    "net_payment_term",
                    "pdf",
                ]
            },
        ),
        (
            "Amounts",
            {
                "fields": [
                    "fees_amount",
                    "coupons_amount",
                    "sub_total_excluding_taxes_amount",
                    "taxes_amount",
                    "sub_total_including_taxes_amount",
                    "credit_notes_amount",
                    "prepaid_credit_amount",
                    "total_amount",
                    "total_paid_amount",
                    "due",
                ]
            },
        ),
        (
            "Record",
            {
                "classes": ["collapse"],
                "fields": [
                    "id",
                    "sequential_id",
                    "customer_snapshot",
                    "metadata",
                    "finalized_at",
                    "voided_at",
                    "created_at",
                    "updated_at",
                ],
            },
        ),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return flatten_fieldsets(self.fieldsets)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # One query for every row's billing periods, whatever the page size.
        periods = Prefetch(
            "invoice_subscriptions",
            queryset=InvoiceSubscription.objects.order_by("from_datetime").only(
                "invoice_id", "from_datetime", "to_datetime"
            ),
        )
        return super().get_queryset(request).prefetch_related(periods)

    def get_urls(self) -> list[URLPattern]:
        def view(function: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(lambda request, object_id: function(self, request, object_id))

        return [
            path(
                "billing-run/",
                self.admin_site.admin_view(lambda request: admin_views.billing_run_view(self, request)),
                name="invoicing_invoice_billing_run",
            ),
            path(
                "too-late-events/",
                self.admin_site.admin_view(lambda request: correction_views.too_late_events_view(self, request)),
                name="invoicing_too_late_events",
            ),
            path("<uuid:object_id>/finalize/", view(admin_views.finalize_view), name="invoicing_invoice_finalize"),
            path(
                "<uuid:object_id>/discard-correction/",
                view(correction_views.discard_view),
                name="invoicing_invoice_discard",
            ),
            path("<uuid:object_id>/what-if/", view(correction_views.rerate_view), name="invoicing_invoice_rerate"),
            path("fee/<uuid:object_id>/events/", view(correction_views.fee_events_view), name="invoicing_fee_events"),
            path(
                "correction/<uuid:object_id>/issue/",
                view(correction_views.correction_issue_view),
                name="invoicing_correction_issue",
            ),
            path(
                "correction/<uuid:object_id>/discard/",
                view(correction_views.correction_discard_view),
                name="invoicing_correction_discard",
            ),
            path("<uuid:object_id>/void/", view(admin_views.void_view), name="invoicing_invoice_void"),
            path(
                "<uuid:object_id>/credit-note/",
                view(admin_views.credit_note_view),
                name="invoicing_invoice_credit_note",
            ),
            path(
                "<uuid:object_id>/preview-pdf/",
                view(admin_views.preview_pdf_view),
                name="invoicing_invoice_preview_pdf",
            ),
            path(
                "<uuid:object_id>/regenerate-pdf/",
                view(admin_views.regenerate_pdf_view),
                name="invoicing_invoice_regenerate_pdf",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        invoice = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if invoice is not None:
            tz_name = Organization.current().timezone or "UTC"
            context["invoice_actions"] = [
                *admin_views.available_actions(invoice, request),
                *correction_views.late_usage_buttons(invoice, request),
            ]
            context["invoice_corrections"] = correction_views.corrections_of(invoice, request)
            context["invoice_payments"] = [
                {
                    "amount": format_money(payment.amount, payment.currency),
                    "status": payment.get_status_display(),
                    "provider": payment.get_provider_display(),
                    "reference": payment.reference or payment.provider_payment_id,
                    "paid_at": format_instant(payment.paid_at, tz_name),
                    "url": reverse("admin:payments_payment_change", args=[payment.pk]),
                }
                # The reverse accessor of payments' foreign key: invoicing imports nothing from payments.
                for payment in invoice.payments.order_by("created_at")
            ]
            context["invoice_times"] = {
                "finalized": format_instant(invoice.finalized_at, tz_name),
                "voided": format_instant(invoice.voided_at, tz_name),
                "created": format_instant(invoice.created_at, tz_name),
            }
        return super().change_view(request, object_id, form_url, context)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        with display_timezone(Organization.current().timezone):
            response = super().changelist_view(request, extra_context)
            if isinstance(response, TemplateResponse) and response.context_data and "cl" in response.context_data:
                response.context_data["currency_totals"] = self._currency_totals(response.context_data["cl"].queryset)
                response.render()  # the rows are drawn now, inside the organization's timezone
        return response

    def _currency_totals(self, filtered: QuerySet) -> dict[str, Any]:
        """Under the list: per currency, the filtered rows' total (voided ones aside) and amount due."""
        rows = (
            filtered.prefetch_related(None)
            .order_by()
            .values("currency")
            .annotate(
                total=Sum("total_amount", filter=~Q(status=InvoiceStatus.VOIDED)),
                due=Sum(_DUE, filter=analytics.outstanding_q()),
            )
            .order_by("currency")
        )
        return {
            "labels": ["Total (not voided)", "Amount due"],
            "rows": [
                {
                    "currency": row["currency"],
                    "cells": [
                        format_money(row["total"] or Decimal(0), row["currency"]),
                        format_money(row["due"] or Decimal(0), row["currency"]),
                    ],
                }
                for row in rows
            ],
        }

    def has_billing_permission(self, request: HttpRequest) -> bool:
        """The actions need the model's real change permission (the forms are read-only for all)."""
        return request.user.has_perm("invoicing.change_invoice")

    @admin.display(description="number", ordering="number")
    def number_or_id(self, invoice: Invoice) -> str:
        return invoice.number or str(invoice.pk)

    @admin.display(description="corrects")
    def corrected_invoice_link(self, invoice: Invoice) -> str:
        """A correction invoice's original (late usage)."""
        if invoice.corrected_invoice_id is None:
            return "-"
        url = reverse("admin:invoicing_invoice_change", args=[invoice.corrected_invoice_id])
        return format_html("<a href='{}'>{}</a>", url, invoice.corrected_invoice)

    @admin.display(description="customer", ordering="customer__external_id")
    def customer_link(self, invoice: Invoice) -> str:
        customer = invoice.customer
        url = reverse("admin:customers_customer_change", args=[customer.pk])
        return format_html("<a href='{}'>{}</a> ({})", url, customer.name or customer.external_id, customer.external_id)

    @admin.display(description="total", ordering="total_amount")
    def total(self, invoice: Invoice) -> str:
        return format_money(invoice.total_amount, invoice.currency)

    @admin.display(description="amount due")
    def due(self, invoice: Invoice) -> str:
        return format_money(invoice.total_due_amount, invoice.currency)

    @admin.display(description="billing period")
    def billing_period(self, invoice: Invoice) -> str:
        periods = list(invoice.invoice_subscriptions.all())
        if not periods:
            return "-"
        first, last = periods[0].from_datetime, max(period.to_datetime for period in periods)
        return f"{_day(first)} to {_day(last, exclusive=True)}"

    @admin.display(description="PDF")
    def pdf(self, invoice: Invoice) -> str:
        return _pdf_link(invoice)

    # --- actions -----------------------------------------------------------------------------

    def _apply(self, request: HttpRequest, queryset: QuerySet, done: str, call: Any) -> None:
        _apply_each(
            self, request, queryset.select_related("customer").order_by("issuing_date", "created_at"), done, call
        )

    @admin.action(description="Finalize selected drafts", permissions=["billing"])
    def finalize(self, request: HttpRequest, queryset: QuerySet) -> None:
        service = services.invoice_finalize
        self._apply(request, queryset, "finalized", lambda invoice: service(invoice=invoice, actor=_actor(request)))

    @admin.action(description="Refresh selected drafts (recompute from usage)", permissions=["billing"])
    def refresh(self, request: HttpRequest, queryset: QuerySet) -> None:
        service = services.invoice_refresh
        self._apply(request, queryset, "refreshed", lambda invoice: service(invoice=invoice, actor=_actor(request)))

    @admin.action(description="Void selected invoices (finalized, not paid), with a reason", permissions=["billing"])
    def void(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        form = VoidReasonForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": "Void invoices",
                "explanation": "Voiding cancels each invoice: nothing is due on it any more and the credit it consumed "
                "goes back to its credit notes. The reason is kept in each invoice's audit trail.",
                "form": form,
                "objects": queryset,
                "action": "void",
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/tollgate/action_form.html", context)
        reason = form.cleaned_data["reason"]
        service = audit.invoice_void_with_reason
        self._apply(
            request, queryset, "voided", lambda invoice: service(invoice=invoice, actor=_actor(request), reason=reason)
        )
        return None

    @admin.action(description="Render the PDF again", permissions=["billing"])
    def regenerate_pdf(self, request: HttpRequest, queryset: QuerySet) -> None:
        def render(invoice: Invoice) -> None:
            if invoice.status not in (InvoiceStatus.FINALIZED, InvoiceStatus.VOIDED):
                raise InvoicingError(code="is_draft")
            pdf.invoice_pdf_render(invoice=invoice, actor=_actor(request))

        self._apply(request, queryset, "PDF rendered", render)


@admin.register(Fee)
class FeeAdmin(CsvExportMixin, ReadOnlyAdmin):
    list_display = ["line", "invoice_link", "fee_type", "units", "events_count", "amount_money", "created_at"]
    csv_fields = [
        "id",
        "invoice__number",
        "invoice__customer__external_id",
        "fee_type",
        "invoice_display_name",
        "units",
        "events_count",
        "currency",
        "amount",
        "taxes_amount",
        "from_datetime",
        "to_datetime",
    ]
    csv_money_fields = ["amount", "taxes_amount"]
    # The dashboard's MRR links here with the invoice's status and issuing month.
    DASHBOARD_LOOKUPS = ("invoice__status", "invoice__issuing_date__gte", "invoice__issuing_date__lt")

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        return lookup in self.DASHBOARD_LOOKUPS or super().lookup_allowed(lookup, value, request)

    @admin.display(description="amount", ordering="amount")
    def amount_money(self, fee: Fee) -> str:
        return format_money(fee.amount, fee.currency)

    list_filter = ["fee_type", "currency", "pay_in_advance"]
    search_fields = ["invoice__number", "=invoice__customer__external_id", "=subscription__external_id"]
    list_select_related = ["invoice", "charge__billable_metric", "charge_filter", "subscription__plan", "add_on"]
    show_full_result_count = False

    @admin.display(description="line")
    def line(self, fee: Fee) -> str:
        return documents.fee_line_name(fee)

    @admin.display(description="invoice", ordering="invoice__number")
    def invoice_link(self, fee: Fee) -> str | None:
        invoice = fee.invoice
        if invoice is None:  # a pay-in-advance fee of a charge that is not invoiceable
            return None  # the admin shows its empty value
        url = reverse("admin:invoicing_invoice_change", args=[invoice.pk])
        return format_html("<a href='{}'>{}</a>", url, invoice.number or invoice.pk)


class CreditNoteItemInline(_ReadOnlyInline):
    model = CreditNoteItem
    fields = ("fee", "amount", "precise_amount")
    readonly_fields = fields


class CreditNoteAppliedTaxInline(_ReadOnlyInline):
    model = CreditNoteAppliedTax
    fields = ("tax_code", "tax_name", "tax_rate", "base_amount", "amount")
    readonly_fields = fields


class CreditNoteEventInline(_ReadOnlyInline):
    model = InvoiceEvent
    fk_name = "credit_note"
    verbose_name = "history entry"
    verbose_name_plural = "history"
    fields = ("created_at", "kind", "actor", "payload")
    readonly_fields = fields


@admin.register(CreditNote)
class CreditNoteAdmin(CsvExportMixin, ReadOnlyAdmin):
    change_form_template = "admin/tollgate/credit_note_change_form.html"
    list_display = [
        "__str__",
        "status",
        "invoice",
        "customer",
        "reason",
        "credit_status",
        "refund_status",
        "total",
        "balance",
        "issuing_date",
        "pdf",
    ]
    csv_fields = [
        "number",
        "status",
        "invoice__number",
        "customer__external_id",
        "reason",
        "credit_status",
        "refund_status",
        "currency",
        "credit_amount",
        "refund_amount",
        "balance_amount",
        "total_amount",
        "issuing_date",
    ]
    csv_money_fields = ["credit_amount", "refund_amount", "balance_amount", "total_amount"]

    @admin.display(description="total", ordering="total_amount")
    def total(self, note: CreditNote) -> str:
        return format_money(note.total_amount, note.currency)

    @admin.display(description="balance", ordering="balance_amount")
    def balance(self, note: CreditNote) -> str:
        return format_money(note.balance_amount, note.currency)

    list_filter = ["status", "reason", "credit_status", "refund_status", "currency"]
    search_fields = ["number", "invoice__number", "=customer__external_id"]
    list_select_related = ["invoice", "customer"]
    inlines = [CreditNoteItemInline, CreditNoteAppliedTaxInline, CreditNoteEventInline]
    # Read-only like every issued document; the two changes finance may make are actions calling
    # the credit note services (the same as the API), reported per note and logged.
    actions = ["void_credit", "mark_refund_paid"]

    def has_billing_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("invoicing.change_creditnote")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Drafts too (a late-usage decrease waiting for finance), with their status.
        queryset = CreditNote.all_objects.get_queryset()
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        note = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if note is not None:
            context["credit_note_actions"] = correction_views.credit_note_actions(note, request)
        return super().change_view(request, object_id, form_url, extra_context=context)

    @admin.display(description="PDF")
    def pdf(self, note: CreditNote) -> str:
        return _pdf_link(note)

    def _apply(self, request: HttpRequest, queryset: QuerySet, done: str, call: Any) -> None:
        _apply_each(self, request, queryset.order_by("created_at", "number"), done, call)

    @admin.action(description="Void credit (what is left of it)", permissions=["billing"])
    def void_credit(self, request: HttpRequest, queryset: QuerySet) -> None:
        service = credit_notes.credit_note_void
        self._apply(request, queryset, "credit voided", lambda note: service(credit_note=note, actor=_actor(request)))

    @admin.action(description="Mark refund as paid (refunded by hand)", permissions=["billing"])
    def mark_refund_paid(self, request: HttpRequest, queryset: QuerySet) -> None:
        service = credit_note_refunds.credit_note_refund_mark_paid
        self._apply(
            request, queryset, "refund marked paid", lambda note: service(credit_note=note, actor=_actor(request))
        )


# Wallets have their own admin module (and an inline on the customer page).
from .mail import admin as mail_admin  # noqa: E402, F401  (registers the e-mail outbox)
from .wallets import admin as wallets_admin  # noqa: E402, F401
