"""Reads of the payments app: payment lists and a customer's Stripe payment methods."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from djstripe import models as djstripe_models

from customers.models import Customer

from .models import Payment


def payments_list() -> QuerySet[Payment]:
    """All payments, newest first, with what their serialization reads (no per-row queries)."""
    return Payment.objects.select_related("invoice", "customer").order_by("-created_at", "-id")


def customer_payment_methods(*, customer: Customer) -> tuple[QuerySet[Any], str | None]:
    """The customer's payment methods as mirrored by dj-stripe, and the id of the default one."""
    if not customer.provider_customer_id:
        return djstripe_models.PaymentMethod.objects.none(), None
    stripe_customer = djstripe_models.Customer.objects.filter(id=customer.provider_customer_id).first()
    default_id = stripe_customer.default_payment_method_id if stripe_customer else None
    queryset = djstripe_models.PaymentMethod.objects.filter(customer__id=customer.provider_customer_id).order_by(
        "created", "djstripe_id"
    )
    return queryset, default_id
