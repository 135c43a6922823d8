"""Lago's payment and payment-method shapes: input validation (DRF) and output (plain dicts)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time
from typing import Any

from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing_project.money import to_cents
from payments.models import Payment, PaymentProviderName, PaymentStatus
from payments.providers import manual as manual_provider

# Lago's `payment_status` knows pending/processing/succeeded/failed; waiting for the customer's
# 3-D Secure is still pending there (the raw state is in `status`).
_LAGO_PAYMENT_STATUS: dict[str, str] = {
    PaymentStatus.PENDING: "pending",
    PaymentStatus.PROCESSING: "processing",
    PaymentStatus.REQUIRES_ACTION: "pending",
    PaymentStatus.SUCCEEDED: "succeeded",
    PaymentStatus.FAILED: "failed",
}

# Deterministic Lago-style ids for Stripe payment methods (Tollgate keeps them in dj-stripe only).
PAYMENT_METHOD_NAMESPACE = uuid.UUID("6f1c7a52-3e1b-4d3c-9a43-0c6f5b1f2a90")


class StrictIntegerField(serializers.IntegerField):
    """An integer in the JSON, as Lago requires for `*_cents`: no strings, floats or booleans."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.STR)
class PaidAtField(serializers.Field):
    """A date (`2025-02-20`, midnight UTC) or an ISO 8601 datetime (UTC when without offset)."""

    default_error_messages = {"invalid_date": "Enter a date or an ISO 8601 datetime."}

    def to_internal_value(self, data: Any) -> datetime:
        if not isinstance(data, str):
            self.fail("invalid_date")
        try:
            moment = parse_datetime(data)
            day = None if moment else parse_date(data)
        except ValueError:
            self.fail("invalid_date")
        if moment is None:
            if day is None:
                self.fail("invalid_date")
            moment = datetime.combine(day, time.min)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class ManualPaymentInput(serializers.Serializer):
    invoice_id = serializers.CharField()
    amount_cents = StrictIntegerField(min_value=1, max_value=10**15)
    reference = serializers.CharField(max_length=manual_provider.REFERENCE_MAX_LENGTH)
    paid_at = PaidAtField(required=False, allow_null=True)


class PaymentMethodInput(serializers.Serializer):
    provider_method_id = serializers.CharField(max_length=255)
    set_as_default = serializers.BooleanField(required=False, default=True)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def serialize_payment(payment: Payment) -> dict[str, Any]:
    """Lago's payment object (plus Tollgate's attempt, failure and paid_at fields)."""
    invoice = payment.invoice
    customer = payment.customer
    is_manual = payment.provider == PaymentProviderName.MANUAL
    return {
        "lago_id": str(payment.pk),
        "lago_customer_id": str(customer.pk),
        "external_customer_id": customer.external_id,
        "invoice_ids": [str(invoice.pk)],
        "invoice_numbers": [invoice.number],
        "lago_payable_id": str(invoice.pk),
        "payable_type": "Invoice",
        "amount_cents": to_cents(payment.amount, payment.currency),
        "amount_currency": payment.currency,
        "status": payment.status,
        "payment_status": _LAGO_PAYMENT_STATUS[payment.status],
        "type": "manual" if is_manual else "provider",
        "reference": payment.reference or None,
        "payment_provider_code": None if is_manual else payment.provider,
        "payment_provider_type": None if is_manual else payment.provider,
        "external_payment_id": payment.provider_payment_id or None,
        "provider_payment_id": payment.provider_payment_id or None,
        "provider_customer_id": payment.provider_customer_id or None,
        "next_action": payment.next_action,
        "attempt": payment.attempt,
        "error_code": payment.failure_code or None,
        "failure_reason": payment.failure_reason or None,
        "paid_at": _iso(payment.paid_at),
        "created_at": _iso(payment.created_at),
    }


def payment_method_lago_id(provider_method_id: str) -> str:
    return str(uuid.uuid5(PAYMENT_METHOD_NAMESPACE, provider_method_id))


def serialize_payment_method(payment_method: Any, *, default_id: str | None) -> dict[str, Any]:
    """Lago's payment method object, from dj-stripe's PaymentMethod mirror."""
    data = payment_method.stripe_data or {}
    card = data.get("card") or {}
    return {
        "lago_id": payment_method_lago_id(payment_method.id),
        "is_default": payment_method.id == default_id,
        "payment_provider_code": "stripe",
        "payment_provider_name": "Stripe",
        "payment_provider_type": "stripe",
        "provider_method_id": payment_method.id,
        "provider_method_type": data.get("type"),
        "details": {
            "brand": card.get("brand"),
            "last4": card.get("last4"),
            "expiration_month": card.get("exp_month"),
            "expiration_year": card.get("exp_year"),
        }
        if card
        else None,
        "created_at": _iso(payment_method.created or payment_method.djstripe_created),
    }
