"""Demo data for invoicing: bill the demo subscriptions (plans' demo: sub_acme and sub_tanaka
for their two ended months, sub_globex for its ended week) through the billing run itself, so
the demo shows finalized invoices with their PDFs and globex's draft in its grace period; then a
one-off invoice (acme's onboarding add-on) and a credit note (on Tanaka's latest invoice).

Safe to repeat: the billing run skips a period billed already (the InvoiceSubscription
constraint), the one-off invoice and the credit note are made only when missing, and only
missing PDFs are rendered.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from billing_project.demo import DemoSummary
from customers.models import Customer
from plans.models import AddOn

from . import credit_notes, pdf, runs, services
from .models import CreditNote, FeeType, Invoice, InvoiceStatus, InvoiceType

DEMO_SUBSCRIPTIONS = ("sub_acme", "sub_tanaka", "sub_globex")
ONE_OFF_CUSTOMER = "acme"
CREDIT_NOTE_CUSTOMER = "tanaka"
# Of the subscription fee of Tanaka's latest invoice (JPY 5,000), credited back to its balance.
CREDIT_NOTE_AMOUNT = Decimal(1000)


def billing_instants(now: datetime) -> list[datetime]:
    """Two instants, oldest first: one in the month before last ends the month two months ago,
    `now` ends last month. Two days before the 1st (UTC) is last month in every timezone."""
    last_month = datetime(now.year, now.month, 1, tzinfo=UTC) - timedelta(days=2)
    return [last_month, now]


def load(*, stdout: Any, summary: DemoSummary | None = None) -> None:
    created = skipped = failed = 0
    for at in billing_instants(timezone.now()):
        for external_id in DEMO_SUBSCRIPTIONS:
            run = runs.bill_due(at=at, actor="system:demo", subscription_external_id=external_id)
            created, skipped, failed = created + run.created, skipped + run.skipped, failed + run.failed
            for error in run.errors:
                stdout.write(f"invoicing: {error}")
    _one_off_invoice(stdout)
    _credit_note(stdout)
    # PDFs are rendered after commit by a task (in process when no broker is configured); with a
    # broker but no worker running, render what is still missing here.
    demo_invoices = Invoice.objects.filter(status=InvoiceStatus.FINALIZED)
    for invoice in demo_invoices.filter(file=""):
        pdf.invoice_pdf_render(invoice=invoice, actor="system:demo")
    with_pdf = demo_invoices.exclude(file="").count()
    stdout.write(
        f"invoicing: {created} invoice(s) billed, {skipped} period(s) already billed, {failed} failed;"
        f" {with_pdf} demo invoice(s) with a PDF"
    )


def _one_off_invoice(stdout: Any) -> None:
    customer = Customer.live.filter(external_id=ONE_OFF_CUSTOMER).first()
    add_on = AddOn.live.filter(code="onboarding").first()
    if customer is None or add_on is None:
        return
    if Invoice.objects.filter(customer=customer, invoice_type=InvoiceType.ONE_OFF).exists():
        return
    invoice = services.invoice_create_one_off(
        customer=customer, currency=None, fees=[{"add_on": add_on, "units": 1}], actor="system:demo"
    )
    stdout.write(f"invoicing: one-off invoice {invoice.number} ({add_on.name}) for {customer.name}")


def _credit_note(stdout: Any) -> None:
    invoice = (
        Invoice.objects.filter(
            customer__external_id=CREDIT_NOTE_CUSTOMER,
            status=InvoiceStatus.FINALIZED,
            invoice_type=InvoiceType.SUBSCRIPTION,
        )
        .order_by("-issuing_date", "-number")
        .first()
    )
    if invoice is None or CreditNote.objects.filter(invoice__customer_id=invoice.customer_id).exists():
        return
    fee = invoice.fees.filter(fee_type=FeeType.SUBSCRIPTION).first()
    if fee is None:
        return
    note = credit_notes.credit_note_create(
        invoice=invoice,
        reason="order_change",
        description="Goodwill: a week of downtime",
        items=[(fee, min(CREDIT_NOTE_AMOUNT, fee.amount))],
        actor="system:demo",
    )
    stdout.write(f"invoicing: credit note {note.number} on {invoice.number}")
