"""Test data builders for the payments app: finalized invoices to collect, payments.

Invoices are built directly as rows (the invoicing app's billing run is not needed to test
collection): finalized, numbered, with totals and dates set by hand.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from customers.models import Customer
from invoicing.models import Invoice, InvoiceStatus
from payments.models import Payment, PaymentProviderName, PaymentStatus, PaymentTrigger
from tests.factories.customers import make_customer

_numbers = itertools.count(1)


def make_finalized_invoice(
    *,
    customer: Customer | None = None,
    currency: str = "USD",
    total: Decimal | str = "100.00",
    issuing_date: date | None = None,
    payment_due_date: date | None = None,
    **fields: Any,
) -> Invoice:
    customer = customer or make_customer(external_id=f"cust_inv_{next(_numbers)}")
    issuing_date = issuing_date or timezone.now().date()
    total = Decimal(total)
    sequence = next(_numbers)
    fields.setdefault("status", InvoiceStatus.FINALIZED)
    fields.setdefault("number", f"TOL-{sequence:06d}")
    fields.setdefault("finalized_at", timezone.now())
    return Invoice.objects.create(
        customer=customer,
        currency=currency,
        issuing_date=issuing_date,
        payment_due_date=payment_due_date or issuing_date + timedelta(days=30),
        fees_amount=total,
        sub_total_excluding_taxes_amount=total,
        sub_total_including_taxes_amount=total,
        total_amount=total,
        **fields,
    )


def make_stripe_payment(
    *, invoice: Invoice, attempt: int = 1, status: str = PaymentStatus.FAILED, **fields: Any
) -> Payment:
    fields.setdefault("amount", invoice.total_amount)
    fields.setdefault("trigger", PaymentTrigger.FINALIZATION)
    if status == PaymentStatus.SUCCEEDED:
        fields.setdefault("paid_at", timezone.now())
    return Payment.objects.create(
        invoice=invoice,
        customer_id=invoice.customer_id,
        provider=PaymentProviderName.STRIPE,
        status=status,
        currency=invoice.currency,
        attempt=attempt,
        **fields,
    )
