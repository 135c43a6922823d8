"""Demo data for payments: a partial manual payment on one demo invoice. Safe to repeat."""

from __future__ import annotations

from typing import Any

from django.db.models import F

from billing_project.money import to_cents
from invoicing.models import Invoice, InvoiceStatus

from . import services
from .models import Payment

DEMO_REFERENCE = "DEMO-TRANSFER-0001"


def load(*, stdout: Any) -> None:
    if Payment.objects.filter(reference=DEMO_REFERENCE).exists():
        stdout.write("payments: demo manual payment already recorded")
        return
    invoice = (
        Invoice.objects.filter(status=InvoiceStatus.FINALIZED, total_amount__gt=F("total_paid_amount"))
        .order_by("issuing_date", "number")
        .first()
    )
    if invoice is None:
        stdout.write("payments: no finalized invoice with something due, no demo payment")
        return
    # Half of what is due, so the demo shows a partial payment and an amount still due.
    amount_cents = max(to_cents(invoice.total_due_amount, invoice.currency) // 2, 1)
    payment = services.payment_create_manual(invoice_id=invoice.pk, amount_cents=amount_cents, reference=DEMO_REFERENCE)
    stdout.write(f"payments: recorded {payment.amount} {payment.currency} by bank transfer on invoice {invoice}")
