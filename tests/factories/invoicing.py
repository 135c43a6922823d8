"""Test data builders for the invoicing app: a customer on a plan with events, and runs."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from customers.models import Customer
from invoicing import runs
from invoicing.models import Invoice
from plans.models import Plan, Subscription
from tests.factories.customers import make_customer
from tests.factories.metrics import make_events
from tests.factories.plans import make_subscription


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def subscribe(
    *,
    plan: Plan,
    customer: Customer | None = None,
    external_id: str = "sub_1",
    start: datetime | None = None,
    **fields: Any,
) -> Subscription:
    """An active subscription started at `start` (default 2024-01-01 UTC)."""
    start = start or utc(2024, 1, 1)
    customer = customer or make_customer(external_id=f"cust_{external_id}")
    return make_subscription(
        customer=customer, plan=plan, external_id=external_id, subscription_at=start, now=start, **fields
    )


def events(
    subscription: Subscription, timestamps: list[datetime], *, code: str = "api_calls", **properties: Any
) -> None:
    make_events(
        {"external_subscription_id": subscription.external_id, "code": code, "timestamp": t, "properties": properties}
        for t in timestamps
    )


def bill(at: datetime, **filters: Any) -> runs.RunSummary:
    return runs.bill_due(at=at, actor="test", **filters)


def only_invoice(summary: runs.RunSummary) -> Invoice:
    assert summary.created == 1, summary
    return Invoice.objects.get(pk=summary.invoice_ids[0])


def amounts(invoice: Invoice) -> dict[str, Decimal]:
    invoice.refresh_from_db()
    names = (
        "fees_amount",
        "coupons_amount",
        "sub_total_excluding_taxes_amount",
        "taxes_amount",
        "sub_total_including_taxes_amount",
        "credit_notes_amount",
        "total_amount",
    )
    return {name: getattr(invoice, name).normalize() for name in names}
