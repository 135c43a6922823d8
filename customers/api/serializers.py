"""Lago's JSON shapes for the organization and customers (plain functions), and serializers that
only document them in the OpenAPI schema (the views validate by hand, with Lago's codes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rest_framework import serializers

from customers.models import EMAIL_SETTINGS, Customer, DocumentNumbering, Organization, PaymentProvider


def iso_seconds(moment: datetime | None) -> str | None:
    """Lago's timestamps: 2022-04-29T08:59:51Z."""
    if moment is None:
        return None
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def _text(value: str) -> str | None:
    return value or None


def serialize_organization(organization: Organization) -> dict[str, Any]:
    return {
        "lago_id": str(organization.lago_id),
        "name": organization.name,
        "created_at": iso_seconds(organization.created_at),
        "webhook_url": _text(organization.webhook_url),
        "webhook_urls": [organization.webhook_url] if organization.webhook_url else [],
        # Verifies X-Lago-Signature of `hmac` webhook endpoints (the API key's holder may see it).
        "hmac_key": organization.hmac_key,
        "country": _text(organization.country),
        "address_line1": _text(organization.address_line1),
        "address_line2": _text(organization.address_line2),
        "state": _text(organization.state),
        "zipcode": _text(organization.zipcode),
        "email": _text(organization.email),
        "city": _text(organization.city),
        "legal_name": _text(organization.legal_name),
        "legal_number": _text(organization.legal_number),
        "net_payment_term": organization.net_payment_term,
        "tax_identification_number": _text(organization.tax_identification_number),
        "timezone": organization.timezone,
        "default_currency": organization.default_currency,
        "document_numbering": organization.document_numbering,
        "document_number_prefix": organization.document_number_prefix,
        "finalize_zero_amount_invoice": True,
        "email_settings": list(organization.email_settings or []),
        "billing_configuration": {
            "invoice_footer": _text(organization.invoice_footer),
            "invoice_grace_period": organization.invoice_grace_period,
            "document_locale": organization.document_locale,
        },
    }


def serialize_customer(customer: Customer, organization: Organization) -> dict[str, Any]:
    """Lago's customer object. `organization` gives the applicable timezone and the slug prefix."""
    sequential_id = customer.sequential_id
    return {
        "lago_id": str(customer.pk),
        "sequential_id": sequential_id,
        "slug": f"{organization.document_number_prefix}-{sequential_id:03d}" if sequential_id else None,
        "external_id": customer.external_id,
        "account_type": "customer",
        "customer_type": None,
        "name": _text(customer.name),
        "firstname": _text(customer.firstname),
        "lastname": _text(customer.lastname),
        "legal_name": _text(customer.legal_name),
        "legal_number": _text(customer.legal_number),
        "tax_identification_number": _text(customer.tax_identification_number),
        "email": _text(customer.email),
        "phone": _text(customer.phone),
        "url": _text(customer.url),
        "logo_url": None,
        "address_line1": _text(customer.address_line1),
        "address_line2": _text(customer.address_line2),
        "city": _text(customer.city),
        "state": _text(customer.state),
        "zipcode": _text(customer.zipcode),
        "country": _text(customer.country),
        "currency": _text(customer.currency),
        "timezone": _text(customer.timezone),
        "applicable_timezone": customer.applicable_timezone(organization),
        "net_payment_term": customer.net_payment_term,
        "finalize_zero_amount_invoice": "inherit",
        "skip_invoice_custom_sections": False,
        "exclude_from_dunning_campaign": customer.exclude_from_dunning_campaign,
        "created_at": iso_seconds(customer.created_at),
        "updated_at": iso_seconds(customer.updated_at),
        "billing_configuration": {
            "invoice_grace_period": customer.invoice_grace_period,
            "payment_provider": _text(customer.payment_provider),
            "payment_provider_code": None,
            "provider_customer_id": _text(customer.provider_customer_id),
            "provider_payment_methods": [],
            "document_locale": None,
        },
        "shipping_address": {
            "address_line1": None,
            "address_line2": None,
            "city": None,
            "state": None,
            "zipcode": None,
            "country": None,
        },
        "metadata": [
            {
                "lago_id": item.get("lago_id"),
                "key": item.get("key"),
                "value": item.get("value"),
                "display_in_invoice": bool(item.get("display_in_invoice")),
                "created_at": item.get("created_at"),
            }
            for item in customer.metadata or []
        ],
        "integration_customers": [],
    }


# --- OpenAPI documentation only -------------------------------------------------------------


class OrganizationBillingConfigurationDoc(serializers.Serializer):
    invoice_footer = serializers.CharField(required=False, allow_null=True)
    invoice_grace_period = serializers.IntegerField(required=False, min_value=0)
    document_locale = serializers.CharField(required=False, allow_null=True)


class OrganizationInputDoc(serializers.Serializer):
    name = serializers.CharField(required=False)
    legal_name = serializers.CharField(required=False, allow_null=True)
    legal_number = serializers.CharField(required=False, allow_null=True)
    address_line1 = serializers.CharField(required=False, allow_null=True)
    address_line2 = serializers.CharField(required=False, allow_null=True)
    zipcode = serializers.CharField(required=False, allow_null=True)
    city = serializers.CharField(required=False, allow_null=True)
    state = serializers.CharField(required=False, allow_null=True)
    country = serializers.CharField(required=False, allow_null=True, help_text="ISO 3166 alpha-2")
    email = serializers.CharField(required=False, allow_null=True)
    tax_identification_number = serializers.CharField(required=False, allow_null=True)
    timezone = serializers.CharField(required=False, help_text="IANA, e.g. Europe/Paris")
    default_currency = serializers.CharField(required=False, help_text="ISO 4217")
    document_number_prefix = serializers.CharField(required=False)
    document_numbering = serializers.ChoiceField(choices=DocumentNumbering.values, required=False)
    net_payment_term = serializers.IntegerField(required=False, min_value=0)
    webhook_url = serializers.URLField(required=False, allow_null=True)
    email_settings = serializers.ListField(
        child=serializers.ChoiceField(choices=list(EMAIL_SETTINGS)),
        required=False,
        help_text="The documents e-mailed to the customer when issued",
    )
    billing_configuration = OrganizationBillingConfigurationDoc(required=False)


class OrganizationDoc(serializers.Serializer):
    lago_id = serializers.UUIDField()
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    webhook_url = serializers.CharField(allow_null=True)
    webhook_urls = serializers.ListField(child=serializers.CharField())
    hmac_key = serializers.CharField()
    country = serializers.CharField(allow_null=True)
    address_line1 = serializers.CharField(allow_null=True)
    address_line2 = serializers.CharField(allow_null=True)
    state = serializers.CharField(allow_null=True)
    zipcode = serializers.CharField(allow_null=True)
    email = serializers.CharField(allow_null=True)
    city = serializers.CharField(allow_null=True)
    legal_name = serializers.CharField(allow_null=True)
    legal_number = serializers.CharField(allow_null=True)
    net_payment_term = serializers.IntegerField()
    tax_identification_number = serializers.CharField(allow_null=True)
    timezone = serializers.CharField()
    default_currency = serializers.CharField()
    document_numbering = serializers.ChoiceField(choices=DocumentNumbering.values)
    document_number_prefix = serializers.CharField()
    finalize_zero_amount_invoice = serializers.BooleanField()
    email_settings = serializers.ListField(child=serializers.CharField())
    billing_configuration = OrganizationBillingConfigurationDoc()


class CustomerBillingConfigurationInputDoc(serializers.Serializer):
    invoice_grace_period = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    payment_provider = serializers.ChoiceField(choices=PaymentProvider.values, required=False, allow_null=True)
    provider_customer_id = serializers.CharField(required=False, allow_null=True)
    sync_with_provider = serializers.BooleanField(
        required=False, allow_null=True, help_text="false: only link an existing provider customer"
    )


class CustomerMetadataInputDoc(serializers.Serializer):
    id = serializers.UUIDField(required=False, allow_null=True, help_text="an existing pair's lago_id")
    key = serializers.CharField(max_length=20)
    value = serializers.CharField(max_length=100)
    display_in_invoice = serializers.BooleanField(required=False)


class CustomerInputDoc(serializers.Serializer):
    external_id = serializers.CharField()
    name = serializers.CharField(required=False, allow_null=True)
    firstname = serializers.CharField(required=False, allow_null=True)
    lastname = serializers.CharField(required=False, allow_null=True)
    legal_name = serializers.CharField(required=False, allow_null=True)
    legal_number = serializers.CharField(required=False, allow_null=True)
    tax_identification_number = serializers.CharField(required=False, allow_null=True)
    email = serializers.CharField(required=False, allow_null=True, help_text="one or several, comma-separated")
    exclude_from_dunning_campaign = serializers.BooleanField(required=False)
    phone = serializers.CharField(required=False, allow_null=True)
    url = serializers.CharField(required=False, allow_null=True)
    address_line1 = serializers.CharField(required=False, allow_null=True)
    address_line2 = serializers.CharField(required=False, allow_null=True)
    city = serializers.CharField(required=False, allow_null=True)
    state = serializers.CharField(required=False, allow_null=True)
    zipcode = serializers.CharField(required=False, allow_null=True)
    country = serializers.CharField(required=False, allow_null=True, help_text="ISO 3166 alpha-2")
    currency = serializers.CharField(required=False, allow_null=True, help_text="ISO 4217")
    timezone = serializers.CharField(required=False, allow_null=True, help_text="IANA")
    net_payment_term = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    billing_configuration = CustomerBillingConfigurationInputDoc(required=False)
    metadata = CustomerMetadataInputDoc(many=True, required=False, help_text="replaces the customer's list")
    tax_codes = serializers.ListField(child=serializers.CharField(), required=False)


class CustomerMetadataDoc(serializers.Serializer):
    lago_id = serializers.UUIDField()
    key = serializers.CharField()
    value = serializers.CharField()
    display_in_invoice = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class CustomerBillingConfigurationDoc(serializers.Serializer):
    invoice_grace_period = serializers.IntegerField(allow_null=True)
    payment_provider = serializers.CharField(allow_null=True)
    payment_provider_code = serializers.CharField(allow_null=True)
    provider_customer_id = serializers.CharField(allow_null=True)
    provider_payment_methods = serializers.ListField(child=serializers.CharField())
    document_locale = serializers.CharField(allow_null=True)


class AddressDoc(serializers.Serializer):
    address_line1 = serializers.CharField(allow_null=True)
    address_line2 = serializers.CharField(allow_null=True)
    city = serializers.CharField(allow_null=True)
    state = serializers.CharField(allow_null=True)
    zipcode = serializers.CharField(allow_null=True)
    country = serializers.CharField(allow_null=True)


class CustomerDoc(serializers.Serializer):
    lago_id = serializers.UUIDField()
    sequential_id = serializers.IntegerField(allow_null=True)
    slug = serializers.CharField(allow_null=True)
    external_id = serializers.CharField()
    account_type = serializers.CharField()
    customer_type = serializers.CharField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    firstname = serializers.CharField(allow_null=True)
    lastname = serializers.CharField(allow_null=True)
    legal_name = serializers.CharField(allow_null=True)
    legal_number = serializers.CharField(allow_null=True)
    tax_identification_number = serializers.CharField(allow_null=True)
    email = serializers.CharField(allow_null=True)
    phone = serializers.CharField(allow_null=True)
    url = serializers.CharField(allow_null=True)
    logo_url = serializers.CharField(allow_null=True)
    address_line1 = serializers.CharField(allow_null=True)
    address_line2 = serializers.CharField(allow_null=True)
    city = serializers.CharField(allow_null=True)
    state = serializers.CharField(allow_null=True)
    zipcode = serializers.CharField(allow_null=True)
    country = serializers.CharField(allow_null=True)
    currency = serializers.CharField(allow_null=True)
    timezone = serializers.CharField(allow_null=True)
    applicable_timezone = serializers.CharField()
    net_payment_term = serializers.IntegerField(allow_null=True)
    finalize_zero_amount_invoice = serializers.CharField()
    skip_invoice_custom_sections = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    billing_configuration = CustomerBillingConfigurationDoc()
    shipping_address = AddressDoc()
    metadata = CustomerMetadataDoc(many=True)
    integration_customers = serializers.ListField(child=serializers.DictField())
