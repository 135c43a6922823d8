"""Dunning campaigns, payment requests and payment receipts in the admin.

Campaigns are edited here (steps and thresholds inline); requests and receipts are written by the
services only and are read-only (their e-mails and steps show on each invoice's history).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from billing_project.admin import ReadOnlyAdmin
from billing_project.money import format_money

from .models import DunningCampaign, DunningStep, DunningThreshold, PaymentReceipt, PaymentRequest


class DunningStepInline(admin.TabularInline):
    model = DunningStep
    extra = 1
    fields = ("days_past_due", "retry_card")
    ordering = ("days_past_due",)


class DunningThresholdInline(admin.TabularInline):
    model = DunningThreshold
    extra = 0
    fields = ("currency", "amount")


@admin.register(DunningCampaign)
class DunningCampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "is_default", "schedule", "updated_at"]
    search_fields = ["name", "code"]
    inlines = [DunningStepInline, DunningThresholdInline]
    fields = ("name", "code", "description", "is_default", "bcc_emails")

    @admin.display(description="schedule (days past due)")
    def schedule(self, campaign: DunningCampaign) -> str:
        return ", ".join(str(step.days_past_due) for step in campaign.steps.order_by("days_past_due")) or "-"


def _invoice_link(invoice: Any) -> str:
    return format_html(
        '<a href="{}">{}</a>', reverse("admin:invoicing_invoice_change", args=[invoice.pk]), invoice.number
    )


@admin.register(PaymentRequest)
class PaymentRequestAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "customer", "amount_money", "payment_status", "email", "dunning_step"]
    list_filter = ["payment_status", "currency"]
    search_fields = ["customer__external_id", "customer__name", "email"]
    list_select_related = ["customer", "dunning_step__campaign"]
    date_hierarchy = "created_at"
    readonly_fields = ("id", "customer", "amount_money", "payment_status", "email", "dunning_step", "invoice_links")
    fields = readonly_fields

    @admin.display(description="amount")
    def amount_money(self, request: PaymentRequest) -> str:
        return format_money(request.amount, request.currency)

    @admin.display(description="invoices")
    def invoice_links(self, request: PaymentRequest) -> str:
        links = [_invoice_link(invoice) for invoice in request.invoices.order_by("issuing_date")]
        return format_html(", ".join(["{}"] * len(links)), *links) if links else "-"


@admin.register(PaymentReceipt)
class PaymentReceiptAdmin(ReadOnlyAdmin):
    list_display = ["number", "created_at", "customer", "invoice", "payment"]
    search_fields = ["number", "customer__external_id", "invoice__number"]
    list_select_related = ["customer", "invoice", "payment"]
    date_hierarchy = "created_at"
    readonly_fields = ("number", "customer", "invoice", "payment", "file", "created_at")
    fields = readonly_fields
