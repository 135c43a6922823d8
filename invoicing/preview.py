"""Lago's POST /invoices/preview: the invoice a subscription would get, persisted nowhere.

The billing pipeline itself runs (invoice_create_for_period: the same windows, usage in SQL,
charge models, coupons, taxes) inside a transaction that always rolls back, so a preview can
never disagree with the invoice the run will issue, and leaves no row, number, webhook or task
behind (on-commit callbacks of a rolled-back transaction are discarded). The invoice is rendered
before the rollback, by the caller's `render`.

- An existing subscription: the invoice due at its next period boundary (the current period's
  usage so far; in advance, the next period's fee), as a draft (coupons and taxes applied; credit
  notes and prepaid credits are applied at finalization, so not in a preview).
- A plan for a customer not yet subscribed: a pay-in-advance plan's starting invoice, otherwise
  the invoice at the end of the first period (no usage yet).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from django.db import transaction
from django.utils import timezone

from customers.models import Customer
from plans.models import Plan, Subscription, SubscriptionStatus

from . import billing, windows
from .errors import InvoicingError
from .models import Invoice
from .services import AlreadyBilled, invoice_create_for_period

PREVIEW_ACTOR = "system:preview"
_T = TypeVar("_T")


class _Discard(Exception):
    """Raised to roll the preview's transaction back, carrying the rendered answer out."""

    def __init__(self, answer: Any) -> None:
        super().__init__("preview rolled back")
        self.answer = answer


def _window(subscription: Subscription, *, new: bool, now: datetime) -> windows.BillingWindow:
    if new and windows.bills_start(subscription):
        return windows.starting_window(subscription)
    return windows.periodic_window(subscription, windows.next_boundary(subscription, now))


def _run(subscription: Subscription, *, new: bool, now: datetime, render: Callable[[Invoice], _T]) -> _T:
    try:
        with transaction.atomic():
            try:
                invoice = invoice_create_for_period(
                    subscription=subscription,
                    window=_window(subscription, new=new, now=now),
                    actor=PREVIEW_ACTOR,
                    finalize=False,
                    now=now,
                )
            except AlreadyBilled:
                raise InvoicingError.field("subscription", "already_billed") from None
            raise _Discard(render(invoice))
    except _Discard as discarded:
        return discarded.answer


def invoice_preview_for_subscription(
    *, subscription: Subscription, render: Callable[[Invoice], _T], now: datetime | None = None
) -> _T:
    """The invoice an active subscription gets at its next boundary, rendered, then rolled back."""
    if subscription.status != SubscriptionStatus.ACTIVE:
        raise InvoicingError.field("subscription", "value_is_invalid")
    subscription = billing.with_billing_relations(Subscription.objects.filter(pk=subscription.pk)).get()
    return _run(subscription, new=False, now=now or timezone.now(), render=render)


def invoice_preview_for_plan(
    *,
    customer: Customer | None,
    customer_fields: dict[str, Any],
    plan: Plan,
    billing_time: str,
    subscription_at: datetime | None,
    render: Callable[[Invoice], _T],
    now: datetime | None = None,
) -> _T:
    """The first invoice `plan` would give `customer` (or a customer described by
    `customer_fields`, created only inside the rolled-back transaction)."""
    now = now or timezone.now()
    start = subscription_at or now
    plan_currency = str(plan.amount.currency)
    if customer is not None and customer.currency and customer.currency != plan_currency:
        raise InvoicingError.field("currency", "currencies_does_not_match")
    try:
        with transaction.atomic():
            if customer is None:
                customer = Customer.objects.create(
                    external_id=customer_fields.get("external_id") or f"preview-{uuid.uuid4()}",
                    name=customer_fields.get("name") or "",
                    currency=plan_currency,
                    timezone=customer_fields.get("timezone") or "",
                    country=(customer_fields.get("country") or "").upper(),
                    tax_identification_number=customer_fields.get("tax_identification_number") or "",
                    address_line1=customer_fields.get("address_line1") or "",
                    address_line2=customer_fields.get("address_line2") or "",
                    city=customer_fields.get("city") or "",
                    zipcode=customer_fields.get("zipcode") or "",
                    state=customer_fields.get("state") or "",
                )
            subscription = Subscription.objects.create(
                external_id=f"preview-{uuid.uuid4()}",
                customer=customer,
                plan=plan,
                billing_time=billing_time,
                status=SubscriptionStatus.ACTIVE,
                subscription_at=start,
                started_at=start,
                recorded_at=min(start, now),
            )
            subscription = billing.with_billing_relations(Subscription.objects.filter(pk=subscription.pk)).get()
            # A start in the future is previewed as of that start.
            raise _Discard(_run(subscription, new=True, now=max(now, start), render=render))
    except _Discard as discarded:
        return discarded.answer
