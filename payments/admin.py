"""Payments in the admin: the payments ledger (read-only), invoices to collect (retry now, mark
paid by hand) and customers' Stripe setup (create or link the Stripe customer, attach a card).

Thin: every action calls the same services as the API and the tasks, reports per object, and
writes a LogEntry for what it changed.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from billing_project.admin import ReadOnlyAdmin, money_display
from billing_project.admin_export import CsvExportMixin
from billing_project.local_time import display_timezone, format_instant
from billing_project.money import format_money, to_cents
from customers.models import Organization, PaymentProvider
from invoicing.models import InvoiceStatus

from . import selectors, services
from .models import CustomerPaymentSetup, InvoiceToCollect, Payment, PaymentTrigger, Refund
from .providers import ProviderRejected, ProviderUnavailable

ACTION_FORM_TEMPLATE = "admin/payments/action_form.html"


def _invoice_link(invoice: Any) -> str:
    url = reverse("admin:payments_invoicetocollect_change", args=[invoice.pk])
    return format_html('<a href="{}">{}</a>', url, invoice.number or invoice.pk)


@admin.register(Payment)
class PaymentAdmin(CsvExportMixin, ReadOnlyAdmin):
    """The ledger: rows are written by services only, never edited or deleted by hand."""

    list_display = [
        "short_id",
        "invoice_link",
        "customer_external_id",
        "provider",
        "status",
        "amount_money",
        "attempt",
        "trigger",
        "reference",
        "failure_code",
        "paid_at_local",
    ]
    csv_fields = [
        "id",
        "invoice__number",
        "customer__external_id",
        "provider",
        "status",
        "currency",
        "amount",
        "attempt",
        "trigger",
        "reference",
        "failure_code",
        "paid_at",
        "created_at",
    ]
    csv_money_fields = ["amount"]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # The organization's zone read once for the page (paid_at_local), never once per row.
        with display_timezone(Organization.current().timezone):
            response = super().changelist_view(request, extra_context)
            if isinstance(response, TemplateResponse):
                response.render()
        return response

    @admin.display(description="amount", ordering="amount")
    def amount_money(self, obj: Payment) -> str:
        return format_money(obj.amount, obj.currency)

    @admin.display(description="paid at", ordering="paid_at")
    def paid_at_local(self, obj: Payment) -> str:
        return format_instant(obj.paid_at)

    list_filter = ["provider", "status", "trigger"]
    search_fields = ["=provider_payment_id", "reference", "invoice__number", "customer__external_id"]
    list_select_related = ["invoice", "customer"]
    date_hierarchy = "created_at"
    readonly_fields = (
        "id",
        "invoice_link",
        "customer_external_id",
        "provider",
        "status",
        "amount_money",
        "currency",
        "attempt",
        "trigger",
        "provider_customer_id",
        "provider_payment_id",
        "idempotency_key",
        "failure_code",
        "failure_reason",
        "next_action",
        "reference",
        "paid_at",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields

    @admin.display(description="payment")
    def short_id(self, obj: Payment) -> str:
        return str(obj.pk)[:8]

    @admin.display(description="invoice", ordering="invoice__number")
    def invoice_link(self, obj: Payment) -> str:
        return _invoice_link(obj.invoice)

    @admin.display(description="customer", ordering="customer__external_id")
    def customer_external_id(self, obj: Payment) -> str:
        return obj.customer.external_id


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    """Credit note refunds given back through Stripe: written by the refund services only."""

    list_display = [
        "short_id",
        "credit_note_link",
        "payment_link",
        "status",
        "amount_money",
        "currency",
        "provider_refund_id",
        "failure_code",
        "refunded_at",
        "created_at",
    ]
    list_filter = ["status", "provider", "currency"]
    search_fields = ["=provider_refund_id", "credit_note__number", "=payment__provider_payment_id"]
    list_select_related = ["credit_note", "payment"]
    date_hierarchy = "created_at"
    readonly_fields = (
        "id",
        "credit_note_link",
        "payment_link",
        "provider",
        "status",
        "amount_money",
        "currency",
        "provider_refund_id",
        "idempotency_key",
        "failure_code",
        "failure_reason",
        "refunded_at",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields

    amount_money = money_display("amount")

    @admin.display(description="refund")
    def short_id(self, obj: Refund) -> str:
        return str(obj.pk)[:8]

    @admin.display(description="credit note", ordering="credit_note__number")
    def credit_note_link(self, obj: Refund) -> str:
        url = reverse("admin:invoicing_creditnote_change", args=[obj.credit_note_id])
        return format_html('<a href="{}">{}</a>', url, obj.credit_note.number)

    @admin.display(description="payment")
    def payment_link(self, obj: Refund) -> str:
        url = reverse("admin:payments_payment_change", args=[obj.payment_id])
        return format_html('<a href="{}">{}</a>', url, obj.payment.provider_payment_id or obj.payment_id)


class MarkPaidForm(forms.Form):
    reference = forms.CharField(max_length=40, help_text="Bank transfer reference, cheque number...")
    paid_at = forms.DateTimeField(required=False, help_text="Empty means now.")


class AttachPaymentMethodForm(forms.Form):
    payment_method_id = forms.CharField(
        max_length=255,
        initial="pm_card_visa",
        help_text="A Stripe PaymentMethod id (pm_...). In test mode, pm_card_visa is Stripe's test Visa.",
    )


def _action_form(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    form: forms.Form,
    *,
    action: str,
    title: str,
) -> TemplateResponse:
    """The intermediate page of an action that needs input (the pattern of delete_selected)."""
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "objects": queryset,
        "action": action,
        "opts": modeladmin.model._meta,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, ACTION_FORM_TEMPLATE, context)


@admin.register(InvoiceToCollect)
class InvoiceToCollectAdmin(ReadOnlyAdmin):
    """Viewing only; the actions below are gated by the payments permissions."""

    list_display = [
        "number",
        "customer",
        "currency",
        "total_money",
        "paid_money",
        "amount_due",
        "payment_status",
        "payment_overdue",
        "payment_due_date",
        "payments_link",
    ]
    list_filter = ["status", "payment_status", "payment_overdue", "currency"]
    search_fields = ["number", "customer__external_id", "customer__name"]
    list_select_related = ["customer"]
    ordering = ["payment_due_date", "number"]
    actions = ["retry_payment", "mark_paid"]
    fields = (
        "number",
        "status",
        "customer",
        "currency",
        "total_money",
        "paid_money",
        "amount_due",
        "payment_status",
        "payment_overdue",
        "issuing_date",
        "payment_due_date",
        "payments_link",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # Finalized invoices, and the voided ones that still have payments to show.
        return super().get_queryset(request).exclude(status=InvoiceStatus.DRAFT)

    total_money = money_display("total_amount", description="total")
    paid_money = money_display("total_paid_amount", description="paid")
    amount_due = money_display("total_due_amount", description="due", sortable=False)

    @admin.display(description="payments")
    def payments_link(self, obj: InvoiceToCollect) -> str:
        url = reverse("admin:payments_payment_changelist") + f"?invoice__id__exact={obj.pk}"
        return format_html('<a href="{}">payments</a>', url)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not request.user.has_perm("payments.add_payment"):
            return {}
        return actions

    @admin.action(description="Retry payment now (Stripe customers)")
    def retry_payment(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for invoice in queryset:
            try:
                services.invoice_payment_retry(invoice_id=invoice.pk, trigger=PaymentTrigger.ADMIN)
            except (services.PaymentError, ProviderUnavailable) as error:
                self.message_user(request, f"{invoice}: not retried ({error})", messages.WARNING)
                continue
            invoice.refresh_from_db()
            self.log_change(request, invoice, "Payment retried")
            self.message_user(request, f"{invoice}: payment {invoice.payment_status}", messages.SUCCESS)

    @admin.action(description="Mark paid by hand (record a manual payment of the amount due)")
    def mark_paid(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        form = MarkPaidForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return _action_form(
                self, request, queryset, form, action="mark_paid", title="Record manual payments for the amount due"
            )
        for invoice in queryset:
            due = invoice.total_due_amount
            if due <= 0:
                self.message_user(request, f"{invoice}: nothing is due", messages.WARNING)
                continue
            try:
                payment = services.payment_create_manual(
                    invoice_id=invoice.pk,
                    amount_cents=to_cents(due, invoice.currency),
                    reference=form.cleaned_data["reference"],
                    paid_at=form.cleaned_data["paid_at"],
                )
            except services.PaymentError as error:
                self.message_user(request, f"{invoice}: not recorded ({error.code})", messages.WARNING)
                continue
            self.log_change(request, invoice, f"Manual payment {payment.pk} of {payment.amount} {payment.currency}")
            self.message_user(request, f"{invoice}: paid {payment.amount} {payment.currency}", messages.SUCCESS)
        return None


@admin.register(CustomerPaymentSetup)
class CustomerPaymentSetupAdmin(ReadOnlyAdmin):
    list_display = ["external_id", "name", "provider_customer_id", "default_payment_method"]
    search_fields = ["external_id", "name", "=provider_customer_id"]
    actions = ["sync_stripe_customer", "attach_payment_method"]
    fields = ("external_id", "name", "email", "payment_provider", "provider_customer_id", "default_payment_method")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .filter(deleted_at__isnull=True, payment_provider=PaymentProvider.STRIPE)
            .order_by(F("external_id").asc())
        )

    @admin.display(description="default payment method")
    def default_payment_method(self, obj: CustomerPaymentSetup) -> str:
        queryset, default_id = selectors.customer_payment_methods(customer=obj)
        payment_method = queryset.filter(id=default_id).first() if default_id else None
        if payment_method is None:
            return "-"
        card = (payment_method.stripe_data or {}).get("card") or {}
        return f"{payment_method.id} ({card.get('brand', '?')} •••• {card.get('last4', '?')})"

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not request.user.has_perm("customers.change_customer"):
            return {}
        return actions

    @admin.action(description="Create or link the Stripe customer")
    def sync_stripe_customer(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for customer in queryset:
            try:
                synced = services.stripe_customer_sync(customer_id=customer.pk)
            except (ProviderRejected, ProviderUnavailable) as error:
                self.message_user(request, f"{customer.external_id}: {error}", messages.ERROR)
                continue
            provider_id = synced.provider_customer_id if synced else ""
            if not provider_id:
                self.message_user(request, f"{customer.external_id}: Stripe is not configured", messages.ERROR)
                continue
            self.log_change(request, customer, f"Stripe customer {provider_id}")
            self.message_user(request, f"{customer.external_id}: Stripe customer {provider_id}", messages.SUCCESS)

    @admin.action(description="Attach a payment method (as default)")
    def attach_payment_method(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        form = AttachPaymentMethodForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return _action_form(
                self, request, queryset, form, action="attach_payment_method", title="Attach a Stripe payment method"
            )
        for customer in queryset:
            try:
                attached = services.customer_payment_method_attach(
                    customer=customer, provider_method_id=form.cleaned_data["payment_method_id"]
                )
            except services.PaymentError as error:
                self.message_user(request, f"{customer.external_id}: {error.message}", messages.ERROR)
                continue
            except ProviderUnavailable as error:
                self.message_user(request, f"{customer.external_id}: Stripe unavailable ({error})", messages.ERROR)
                continue
            self.log_change(request, customer, f"Payment method {attached['id']} attached as default")
            self.message_user(request, f"{customer.external_id}: {attached['id']} attached", messages.SUCCESS)
        return None


from . import admin_dunning  # noqa: E402, F401  (registers campaigns, payment requests and receipts)
