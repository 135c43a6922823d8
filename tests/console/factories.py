"""Rows for the console's tests: subscription fees on finalized invoices, built by hand (the
analytics read what billing wrote; they do not need a billing run to be tested)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from customers.models import Customer
from invoicing.models import Fee, FeeType, Invoice
from plans.models import Plan, Subscription
from tests.factories.customers import make_customer
from tests.factories.invoicing import utc
from tests.factories.payments import make_finalized_invoice
from tests.factories.plans import make_plan, make_subscription


def plan(code: str, interval: str, amount_cents: int, **fields: Any) -> Plan:
    return make_plan(code=code, interval=interval, amount_cents=amount_cents, **fields)


def subscription(customer_id: str, plan: Plan, **fields: Any) -> Subscription:
    customer = Customer.objects.filter(external_id=customer_id).first() or make_customer(external_id=customer_id)
    return make_subscription(
        customer=customer, plan=plan, external_id=f"sub_{customer_id}_{plan.code}", subscription_at=utc(2025, 1, 1)
    )


def subscription_fee(
    subscription: Subscription,
    amount: str,
    *,
    issued: date,
    period: tuple[datetime, datetime] | None = None,
    taxes: str = "0",
    coupons: str = "0",
    **invoice_fields: Any,
) -> Invoice:
    amount_value, taxes_value, coupons_value = Decimal(amount), Decimal(taxes), Decimal(coupons)
    invoice = make_finalized_invoice(
        customer=subscription.customer,
        currency=str(subscription.plan.amount.currency),
        total=amount_value - coupons_value + taxes_value,
        issuing_date=issued,
        **invoice_fields,
    )
    Fee.objects.create(
        invoice=invoice,
        subscription=subscription,
        fee_type=FeeType.SUBSCRIPTION,
        currency=invoice.currency,
        units=1,
        amount=amount_value,
        precise_amount=amount_value,
        precise_coupons_amount=coupons_value,
        taxes_amount=taxes_value,
        taxes_precise_amount=taxes_value,
        from_datetime=period[0] if period else None,
        to_datetime=period[1] if period else None,
    )
    return invoice
