"""Demo data for payments, on the invoices the earlier steps issued: Acme's oldest invoice paid in
full and its next one in part (bank transfers), a declined card attempt on Tanaka's oldest
invoice (the demo has no Stripe key: the attempt is recorded as Stripe reports a decline), and
the overdue flags refreshed, so that invoice shows as overdue. Safe to repeat."""

from __future__ import annotations

from typing import Any

from django.db.models import F
from django.utils import timezone

from billing_project.demo import DemoSummary
from billing_project.money import to_cents
from invoicing.models import Invoice, InvoiceStatus, InvoiceType

from . import services
from .models import Payment, PaymentProviderName, PaymentStatus, PaymentTrigger
from .providers import ChargeOutcome

DEMO_REFERENCE = "DEMO-TRANSFER-0001"
PARTIAL_REFERENCE = "DEMO-TRANSFER-0002"
DECLINED_CARD_CUSTOMER = "tanaka"


def _due_invoices(**filters: Any) -> Any:
    return (
        Invoice.objects.filter(status=InvoiceStatus.FINALIZED, total_amount__gt=F("total_paid_amount"), **filters)
        .exclude(invoice_type=InvoiceType.ONE_OFF)
        .order_by("issuing_date", "number")
    )


def load(*, stdout: Any, summary: DemoSummary | None = None) -> None:
    facts = [_paid_in_full(), _paid_in_part(), _declined_card()]
    flagged, _ = services.invoices_overdue_refresh(today=timezone.localdate())
    facts.append(f"{flagged} invoice(s) newly flagged overdue")
    stdout.write("payments: " + "; ".join(fact for fact in facts if fact))


def _paid_in_full() -> str:
    if Payment.objects.filter(reference=DEMO_REFERENCE).exists():
        return "demo payments already recorded"
    invoice = _due_invoices(customer__external_id="acme").first() or _due_invoices().first()
    if invoice is None:
        return "no finalized invoice with something due, no demo payment"
    payment = services.payment_create_manual(
        invoice_id=invoice.pk,
        amount_cents=to_cents(invoice.total_due_amount, invoice.currency),
        reference=DEMO_REFERENCE,
    )
    return f"invoice {invoice.number} paid in full ({payment.amount} {payment.currency} by bank transfer)"


def _paid_in_part() -> str:
    if Payment.objects.filter(reference=PARTIAL_REFERENCE).exists():
        return ""
    invoice = _due_invoices(customer__external_id="acme", total_paid_amount=0).first()
    if invoice is None:
        return ""
    # Half of what is due, so the demo shows a partial payment and an amount still due.
    amount_cents = max(to_cents(invoice.total_due_amount, invoice.currency) // 2, 1)
    payment = services.payment_create_manual(
        invoice_id=invoice.pk, amount_cents=amount_cents, reference=PARTIAL_REFERENCE
    )
    return f"invoice {invoice.number} paid in part ({payment.amount} {payment.currency})"


def _declined_card() -> str:
    invoice = _due_invoices(customer__external_id=DECLINED_CARD_CUSTOMER).first()
    if invoice is None or invoice.payments.filter(provider=PaymentProviderName.STRIPE).exists():
        return ""
    attempt = Payment.objects.create(
        invoice=invoice,
        customer_id=invoice.customer_id,
        provider=PaymentProviderName.STRIPE,
        status=PaymentStatus.PROCESSING,
        amount=invoice.total_due_amount,
        currency=invoice.currency,
        attempt=1,
        trigger=PaymentTrigger.FINALIZATION,
    )
    services.payment_apply_outcome(
        payment_id=attempt.pk,
        outcome=ChargeOutcome(
            status=PaymentStatus.FAILED, failure_code="card_declined", failure_reason="Your card was declined."
        ),
    )
    return f"a declined card payment on invoice {invoice.number}"
