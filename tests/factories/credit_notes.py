"""Test data builders for credit notes: finalized invoices with fees, coupons and taxes built
directly as rows (no billing run), with totals computed in Lago's order, and notes through the
service.

Totals, as the billing run computes them: fees -> coupons (before taxes, a share per fee) -> per
tax rate, the sum of the fees' bases (amount - coupon share) it applies to, rounded once ->
sub total including taxes -> total (no credit notes or prepaid credits consumed here).
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from billing_project.money import round_amount
from customers.models import Customer
from invoicing.credit_notes import credit_note_create
from invoicing.models import (
    CreditNote,
    Fee,
    FeeAppliedTax,
    FeeType,
    Invoice,
    InvoiceAppliedTax,
    InvoiceStatus,
    PaymentStatus,
)
from plans.models import Tax
from tests.factories.customers import make_customer
from tests.factories.plans import make_tax

_numbers = itertools.count(1)


def tax(code: str, rate: str) -> Tax:
    """The tax with `code`, made if missing."""
    return Tax.objects.filter(code=code).first() or make_tax(code=code, rate=rate)


def make_invoice(
    *,
    customer: Customer | None = None,
    currency: str = "USD",
    fees: list[dict[str, Any]],
    paid: Decimal | str | None = None,
    status: str = InvoiceStatus.FINALIZED,
    **fields: Any,
) -> Invoice:
    """An invoice with `fees`: each {"amount": "100.00", "taxes": [Tax, ...], "coupons": "10.00",
    "fee_type": "subscription", "precise_amount": ...}. `paid` sets total_paid_amount (and the
    payment status succeeded when it covers the total)."""
    sequence = next(_numbers)
    customer = customer or make_customer(external_id=f"cust_cn_{sequence}")
    today = timezone.now().date()
    fields.setdefault("number", f"CNT-{sequence:04d}" if status != InvoiceStatus.DRAFT else "CNT-DRAFT")
    if status == InvoiceStatus.FINALIZED:
        fields.setdefault("finalized_at", timezone.now())
    invoice = Invoice.objects.create(
        customer=customer,
        currency=currency,
        status=status,
        issuing_date=today,
        payment_due_date=today + timedelta(days=30),
        **fields,
    )
    tax_bases: dict[str, tuple[Tax, Decimal]] = {}
    fees_amount = coupons_amount = Decimal(0)
    for index, spec in enumerate(fees):
        amount = Decimal(spec["amount"])
        coupons = Decimal(spec.get("coupons", "0"))
        taxes: list[Tax] = spec.get("taxes", [])
        base = amount - coupons
        rate = sum((t.rate for t in taxes), Decimal(0))
        taxes_precise = base * rate / 100
        fee = Fee.objects.create(
            invoice=invoice,
            fee_type=spec.get("fee_type", FeeType.ADD_ON),
            subscription=spec.get("subscription"),
            currency=currency,
            units=Decimal(1),
            unit_amount=amount,
            amount=amount,
            precise_amount=Decimal(spec.get("precise_amount", amount)),
            precise_coupons_amount=coupons,
            taxes_amount=round_amount(taxes_precise, currency),
            taxes_precise_amount=taxes_precise,
            taxes_rate=rate,
            invoice_display_name=spec.get("name", ""),
            description=f"#{index}",
        )
        for t in taxes:
            FeeAppliedTax.objects.create(
                fee=fee, tax=t, tax_code=t.code, tax_name=t.name, tax_rate=t.rate, amount=base * t.rate / 100
            )
            previous = tax_bases.get(t.code, (t, Decimal(0)))[1]
            tax_bases[t.code] = (t, previous + base)
        fees_amount += amount
        coupons_amount += coupons
    taxes_amount = Decimal(0)
    for t, base in tax_bases.values():
        amount = round_amount(base * t.rate / 100, currency)
        InvoiceAppliedTax.objects.create(
            invoice=invoice, tax=t, tax_code=t.code, tax_name=t.name, tax_rate=t.rate, fees_amount=base, amount=amount
        )
        taxes_amount += amount
    sub_total = fees_amount - coupons_amount
    invoice.fees_amount = fees_amount
    invoice.coupons_amount = coupons_amount
    invoice.sub_total_excluding_taxes_amount = sub_total
    invoice.taxes_amount = taxes_amount
    invoice.sub_total_including_taxes_amount = sub_total + taxes_amount
    invoice.total_amount = sub_total + taxes_amount
    if paid is not None:
        invoice.total_paid_amount = Decimal(paid)
        if invoice.total_paid_amount >= invoice.total_amount:
            invoice.payment_status = PaymentStatus.SUCCEEDED
    invoice.save()
    return invoice


def fee_of(invoice: Invoice, index: int = 0) -> Fee:
    """The `index`-th fee given to make_invoice."""
    return invoice.fees.get(description=f"#{index}")


def make_credit_note(
    *,
    invoice: Invoice,
    items: list[tuple[Fee, Decimal | str]] | None = None,
    reason: str = "other",
    actor: str = "test",
    **fields: Any,
) -> CreditNote:
    """A note through the service; by default it credits every fee of the invoice in full."""
    if items is None:
        items = [(fee, fee.amount) for fee in invoice.fees.order_by("description")]
    return credit_note_create(
        invoice=invoice,
        reason=reason,
        items=[(fee, Decimal(amount)) for fee, amount in items],
        actor=actor,
        **fields,
    )
