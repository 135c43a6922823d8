"""Reads of the invoicing app: what is due for billing at an instant, and which drafts are due
for a refresh (late events) or for finalization (grace period over).

A subscription is due when a period boundary of it (a local midnight in the customer's timezone,
else the organization's) passed at or before `at` and that period has no invoice yet; a
terminated one when its final period has none. The "no invoice yet" filter here only saves
work: the unique InvoiceSubscription constraint is what guarantees one invoice per period.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Exists, OuterRef, Prefetch, Q

from customers.models import Organization
from metrics.models import Event
from plans.models import Subscription, SubscriptionStatus

from . import billing
from .models import Invoice, InvoiceStatus, InvoiceSubscription, InvoicingReason

# Terminated subscriptions whose final invoice is missing (a lost signal) are looked for this far back.
FINAL_LOOKBACK = timedelta(days=7)


@dataclass(frozen=True)
class Due:
    subscription: Subscription
    window: billing.BillingWindow

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.subscription.pk, self.window.from_datetime, self.window.to_datetime, self.window.reason)


def final_reason(subscription: Subscription) -> str:
    """upgrading when a plan upgrade ended the subscription (its follower started at the very
    instant it ended, with no downgrade date), else subscription_terminating."""
    for follower in subscription.next_subscriptions.all():
        if (
            follower.downgrade_at is None
            and follower.started_at == subscription.terminated_at
            and follower.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TERMINATED)
        ):
            return InvoicingReason.UPGRADING
    return InvoicingReason.SUBSCRIPTION_TERMINATING


def with_local_timezones(rows: list[Subscription]) -> list[Subscription]:
    """The organization's timezone filled in, in memory, for customers without one, so the
    period functions do not look the organization up once per subscription. Never saved."""
    organization = Organization.current()
    for row in rows:
        if not row.customer.timezone:
            row.customer.timezone = organization.timezone or "UTC"
    return rows


def due_subscriptions(
    *,
    at: datetime,
    customer_external_id: str | None = None,
    subscription_external_id: str | None = None,
    include_billed: bool = False,
) -> list[Due]:
    """Every subscription-period due at `at`, oldest subscriptions first."""
    rows = Subscription.objects.filter(
        Q(status=SubscriptionStatus.ACTIVE, started_at__lt=at)
        | Q(status=SubscriptionStatus.TERMINATED, terminated_at__lte=at, terminated_at__gt=at - FINAL_LOOKBACK)
    )
    if customer_external_id:
        rows = rows.filter(customer__external_id=customer_external_id, customer__deleted_at__isnull=True)
    if subscription_external_id:
        rows = rows.filter(external_id=subscription_external_id)
    rows = billing.with_billing_relations(rows).prefetch_related(
        Prefetch(
            "next_subscriptions",
            queryset=Subscription.objects.only(
                "pk", "previous_subscription_id", "status", "started_at", "downgrade_at"
            ),
        )
    )
    subscriptions = with_local_timezones(list(rows.order_by("created_at", "id")))
    pending_swaps = dict(
        Subscription.objects.filter(
            status=SubscriptionStatus.PENDING,
            previous_subscription_id__in=[s.pk for s in subscriptions],
            downgrade_at__isnull=False,
        ).values_list("previous_subscription_id", "downgrade_at")
    )
    due: list[Due] = []
    for subscription in subscriptions:
        if subscription.status == SubscriptionStatus.TERMINATED:
            due.append(Due(subscription, billing.billing_window_final(subscription, reason=final_reason(subscription))))
            continue
        boundary = billing.periodic_boundary(subscription, at)
        if boundary is None:
            continue
        # Ending at that boundary: plans terminates it there and its final invoice bills the period.
        if subscription.ending_at is not None and subscription.ending_at <= boundary:
            continue
        swap_at = pending_swaps.get(subscription.pk)
        if swap_at is not None and swap_at <= boundary:
            continue
        due.append(Due(subscription, billing.billing_window_periodic(subscription, boundary)))
    if include_billed:
        return due
    return split_billed(due)[0]


def split_billed(due: list[Due]) -> tuple[list[Due], list[Due]]:
    """(not billed yet, billed already), in one query."""
    if not due:
        return [], []
    billed = set(
        InvoiceSubscription.objects.filter(
            subscription_id__in=[d.subscription.pk for d in due],
            to_datetime__in={d.window.to_datetime for d in due},
        ).values_list("subscription_id", "from_datetime", "to_datetime", "invoicing_reason")
    )
    return [d for d in due if d.key not in billed], [d for d in due if d.key in billed]


def chunks(items: list[Due], size: int) -> Iterator[list[Due]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def drafts_with_late_events() -> list[Any]:
    """Drafts whose usage periods received events after the draft was last computed."""
    late = Event.objects.filter(
        external_subscription_id=OuterRef("subscription__external_id"),
        timestamp__gte=OuterRef("charges_from_datetime"),
        timestamp__lt=OuterRef("charges_to_datetime"),
        created_at__gt=OuterRef("invoice__updated_at"),
    )
    return list(
        InvoiceSubscription.objects.filter(invoice__status=InvoiceStatus.DRAFT, charges_from_datetime__isnull=False)
        .filter(Exists(late))
        .values_list("invoice_id", flat=True)
        .distinct()
    )


def drafts_due(*, now: datetime) -> list[Any]:
    """Drafts whose grace period has passed: issuing date (billing date + grace) reached in the
    customer's timezone. Selected loosely by date (a day early), checked precisely per draft."""
    candidates = Invoice.objects.filter(
        status=InvoiceStatus.DRAFT, issuing_date__lte=(now + timedelta(days=1)).date()
    ).select_related("customer")
    organization = Organization.current()
    due = []
    for invoice in candidates:
        tz = invoice.customer.timezone or organization.timezone or "UTC"
        if now.astimezone(ZoneInfo(tz)).date() >= invoice.issuing_date:
            due.append(invoice.pk)
    return due
