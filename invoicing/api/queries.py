"""The API's reads: invoices and fees with everything their answer renders, fetched in a constant
number of queries per page (joins for to-one relations, one prefetch per to-many)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from plans.models import Subscription, SubscriptionStatus

from ..models import Credit, Fee, Invoice, InvoiceStatus, InvoiceSubscription

FEE_RELATIONS = (
    "subscription__plan",
    "charge__billable_metric",
    "charge_filter",
    "add_on",
)


def invoices_for_list() -> QuerySet[Invoice]:
    """The short form: customer, metadata (a column) and applied taxes."""
    return (
        Invoice.objects.exclude(status=InvoiceStatus.DELETED)
        .select_related("customer")
        .prefetch_related("applied_taxes")
        .order_by("-issuing_date", "-created_at", "-id")
    )


def _subscriptions_with_followers() -> QuerySet[Subscription]:
    pending = Subscription.objects.filter(status=SubscriptionStatus.PENDING).select_related("plan")
    return Subscription.objects.select_related("customer", "plan", "previous_subscription__plan").prefetch_related(
        Prefetch("next_subscriptions", queryset=pending, to_attr="pending_next")
    )


def invoices_in_full() -> QuerySet[Invoice]:
    """One invoice with its billing periods, subscriptions, fees (and their taxes) and credits."""
    return Invoice.objects.select_related("customer").prefetch_related(
        "applied_taxes",
        Prefetch(
            "invoice_subscriptions",
            queryset=InvoiceSubscription.objects.prefetch_related(
                Prefetch("subscription", queryset=_subscriptions_with_followers())
            ),
        ),
        Prefetch(
            "fees",
            queryset=Fee.objects.select_related(*FEE_RELATIONS)
            .prefetch_related("applied_taxes")
            .order_by("created_at", "id"),
        ),
        Prefetch(
            "credits",
            queryset=Credit.objects.select_related("applied_coupon__coupon", "credit_note").order_by(
                "created_at", "id"
            ),
        ),
    )


def fees_for_list() -> QuerySet[Fee]:
    return (
        # subscription__customer: a fee without an invoice (pay in advance, not invoiceable).
        # A fee discarded by DELETE /fees/{id} is no longer listed or found.
        Fee.objects.filter(deleted_at__isnull=True)
        .select_related("invoice__customer", "subscription__customer", *FEE_RELATIONS)
        .prefetch_related("applied_taxes")
        .order_by("-created_at", "-id")
    )
