"""Customers in the admin: the organization (a singleton), customers (saved and soft-deleted
through the services, deleted ones still listed) and API keys (the raw key shown once, at
creation; revocation instead of deletion; the hash never shown)."""

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from billing_project.admin import LiveFilter, add_error_codes
from billing_project.admin_export import CsvExportMixin

from . import services
from .models import DOCUMENT_LOCALES, EMAIL_SETTINGS, ApiKey, Customer, Organization

_MESSAGES = {
    "value_is_mandatory": "This field is required.",
    "value_is_invalid": "This value is not valid here.",
    "value_already_exist": "A live customer already uses this external id.",
    "country_code_invalid": "Not an ISO 3166 alpha-2 country code (e.g. FR, US, JP).",
    "invalid_timezone": "Not an IANA timezone (e.g. Europe/Paris).",
    "invalid_email_format": "Not an email address (several may be separated by commas).",
    "url_invalid": "Not an http(s) URL.",
    "currencies_does_not_match": "The currency is fixed once the customer has subscriptions or invoices.",
}


# --- organization ---------------------------------------------------------------------------


class OrganizationForm(forms.ModelForm):
    webhook_url = forms.URLField(required=False, assume_scheme="https")
    email_settings = forms.MultipleChoiceField(
        choices=[(setting, setting) for setting in EMAIL_SETTINGS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Documents e-mailed to the customer when issued (Lago's email_settings)",
    )
    document_locale = forms.ChoiceField(
        choices=[(locale, locale) for locale in DOCUMENT_LOCALES],
        required=False,
        help_text="Language of the documents' e-mails",
    )

    def clean_document_locale(self) -> str:
        """Left out of a post: the organization keeps its language."""
        return self.cleaned_data.get("document_locale") or self.instance.document_locale or "en"

    class Meta:
        model = Organization
        fields = list(services.ORGANIZATION_FIELDS)

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        organization = copy.copy(self.instance)
        for field in self.Meta.fields:
            if field in cleaned:
                setattr(organization, field, cleaned[field])
        services.normalize_codes(organization, ("country", "default_currency", "document_number_prefix"))
        add_error_codes(self, services.organization_validate(organization), _MESSAGES)
        return cleaned


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    """One row (id=1): no add once it exists, no delete; the list opens the row itself."""

    form = OrganizationForm
    list_display = ["name", "legal_name", "country", "default_currency", "timezone", "document_number_prefix"]
    readonly_fields = ["lago_id", "hmac_key", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "legal_name", "legal_number", "tax_identification_number", "email"]}),
        ("Address", {"fields": ["address_line1", "address_line2", "zipcode", "city", "state", "country"]}),
        (
            "Billing",
            {
                "fields": [
                    "timezone",
                    "default_currency",
                    "document_number_prefix",
                    "document_numbering",
                    "net_payment_term",
                    "invoice_grace_period",
                    "invoice_footer",
                    "webhook_url",
                ]
            },
        ),
        ("E-mail", {"fields": ["email_settings", "document_locale"]}),
        ("Record", {"fields": ["lago_id", "hmac_key", "created_at", "updated_at"]}),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not Organization.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        organization = Organization.objects.first()
        if organization is not None:
            return HttpResponseRedirect(reverse("admin:customers_organization_change", args=[organization.pk]))
        return super().changelist_view(request, extra_context)

    def save_model(self, request: HttpRequest, obj: Organization, form: forms.ModelForm, change: bool) -> None:
        changes = {f: form.cleaned_data[f] for f in services.ORGANIZATION_FIELDS if f in form.cleaned_data}
        updated = services.organization_update(changes=changes)
        obj.__dict__.update({k: v for k, v in updated.__dict__.items() if k != "_state"})
        obj._state.adding = False


# --- customers ------------------------------------------------------------------------------


class CustomerForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = ["external_id", *services.CUSTOMER_FIELDS]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        customer = copy.copy(self.instance)
        currency_before = self.instance.currency
        for field in self.Meta.fields:
            if field in cleaned:
                value = cleaned[field]
                setattr(customer, field, "" if value is None and field in services.CUSTOMER_TEXT_FIELDS else value)
        services.normalize_codes(customer, ("country", "currency"))
        errors = services.customer_validate(customer)
        if (
            self.instance.pk
            and currency_before
            and customer.currency != currency_before
            and services.customer_has_billing_history(self.instance)
        ):
            errors.setdefault("currency", []).append("currencies_does_not_match")
        add_error_codes(self, errors, _MESSAGES)
        return cleaned

    def validate_constraints(self) -> None:
        """External id uniqueness among live customers is checked by clean(), in Lago's terms."""


@admin.register(Customer)
class CustomerAdmin(CsvExportMixin, admin.ModelAdmin):
    form = CustomerForm
    csv_fields = ["external_id", "name", "email", "country", "currency", "payment_provider", "created_at", "deleted_at"]
    list_display = [
        "external_id",
        "name",
        "email",
        "country",
        "currency",
        "payment_provider",
        "created_at",
        "deleted_at",
        "overview",
    ]
    list_filter = [LiveFilter, "country", "currency", "payment_provider"]
    search_fields = ["external_id", "name", "email", "firstname", "lastname", "legal_name"]
    readonly_fields = ["overview", "id", "sequential_id", "metadata", "created_at", "updated_at", "deleted_at"]

    @admin.display(description="360")
    def overview(self, customer: Customer) -> str:
        """The customer 360 page (outstanding, usage, invoices, payments, credit notes, activity)."""
        if not customer.pk:
            return "-"
        return format_html(
            '<a href="{}" class="customer-360">Customer 360</a>', reverse("admin:console-customer", args=[customer.pk])
        )

    fieldsets = [
        (None, {"fields": ["overview", "external_id", "name", "firstname", "lastname", "email", "phone", "url"]}),
        ("Legal", {"fields": ["legal_name", "legal_number", "tax_identification_number"]}),
        ("Address", {"fields": ["address_line1", "address_line2", "zipcode", "city", "state", "country"]}),
        (
            "Billing",
            {
                "fields": [
                    "currency",
                    "timezone",
                    "net_payment_term",
                    "invoice_grace_period",
                    "payment_provider",
                    "provider_customer_id",
                    "exclude_from_dunning_campaign",
                ],
                "description": "Empty timezone, payment term or grace period: the organization's applies.",
            },
        ),
        ("Record", {"fields": ["id", "sequential_id", "metadata", "created_at", "updated_at", "deleted_at"]}),
    ]
    actions = ["soft_delete"]

    def has_change_permission(self, request: HttpRequest, obj: Customer | None = None) -> bool:
        # A deleted customer is kept for its invoices, as it was: viewable, not editable.
        if obj is not None and obj.deleted_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Customer | None = None) -> bool:
        if obj is not None and obj.deleted_at is not None:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # rows are soft-deleted, never removed
        return actions

    def save_model(self, request: HttpRequest, obj: Customer, form: forms.ModelForm, change: bool) -> None:
        services.customer_save(customer=obj)

    def delete_model(self, request: HttpRequest, obj: Customer) -> None:
        if obj.deleted_at is None:
            services.customer_delete(customer=obj)

    @admin.action(description="Delete selected customers (soft: invoices keep them)", permissions=["delete"])
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Customer]) -> None:
        deleted = 0
        for customer in queryset.filter(deleted_at__isnull=True):
            services.customer_delete(customer=customer)
            deleted += 1
        self.message_user(request, f"{deleted} customer(s) deleted; their external ids can be used again.")


# --- API keys -------------------------------------------------------------------------------


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """The key itself is shown once, in the message after creation; only its hash is stored and
    the hash is never displayed. Keys are revoked, not deleted (the record stays)."""

    form = ApiKeyForm
    list_display = ["name", "display_prefix", "status", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "display_prefix"]
    actions = ["revoke"]

    @admin.display(description="status")
    def status(self, api_key: ApiKey) -> str:
        return "active" if api_key.is_active else "revoked"

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        if obj is None:
            return []
        return ["display_prefix", "status", "created_at", "last_used_at", "revoked_at"]

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        return ("name",) if obj is None else ("name", *self.get_readonly_fields(request, obj))

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        created, raw = services.api_key_create(name=obj.name)
        obj.__dict__.update({k: v for k, v in created.__dict__.items() if k != "_state"})
        obj._state.adding = False
        messages.warning(
            request,
            format_html(
                "Copy this API key now: it is shown only this once and is not stored. <code>{}</code>",
                raw,
            ),
        )

    @admin.action(description="Revoke selected API keys (they answer 401 from now on)", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(api_key=api_key)
            revoked += 1
        self.message_user(request, f"{revoked} API key(s) revoked.")
