"""Demo data for invoicing: bill the demo subscriptions (plans' demo: sub_acme, sub_tanaka,
started on the 1st two months ago) for their two ended months, through the billing run itself,
so the demo shows finalized invoices with their PDFs (drafts when a grace period is set).

Safe to repeat: the billing run skips a period billed already (the InvoiceSubscription
constraint), and only missing PDFs are rendered.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from . import pdf, runs
from .models import Invoice, InvoiceStatus

DEMO_SUBSCRIPTIONS = ("sub_acme", "sub_tanaka")


def billing_instants(now: datetime) -> list[datetime]:
    """Two instants, oldest first: one in the month before last ends the month two months ago,
    `now` ends last month. Two days before the 1st (UTC) is last month in every timezone."""
    last_month = datetime(now.year, now.month, 1, tzinfo=UTC) - timedelta(days=2)
    return [last_month, now]


def load(*, stdout: Any) -> None:
    created = skipped = failed = 0
    for at in billing_instants(timezone.now()):
        for external_id in DEMO_SUBSCRIPTIONS:
            summary = runs.bill_due(at=at, actor="system:demo", subscription_external_id=external_id)
            created, skipped, failed = created + summary.created, skipped + summary.skipped, failed + summary.failed
            for error in summary.errors:
                stdout.write(f"invoicing: {error}")
    # PDFs are rendered after commit by a task (in process when no broker is configured); with a
    # broker but no worker running, render what is still missing here.
    demo_invoices = Invoice.objects.filter(
        status=InvoiceStatus.FINALIZED, invoice_subscriptions__subscription__external_id__in=DEMO_SUBSCRIPTIONS
    ).distinct()
    for invoice in demo_invoices.filter(file=""):
        pdf.invoice_pdf_render(invoice=invoice, actor="system:demo")
    with_pdf = demo_invoices.exclude(file="").count()
    stdout.write(
        f"invoicing: {created} invoice(s) billed, {skipped} period(s) already billed, {failed} failed;"
        f" {with_pdf} demo invoice(s) with a PDF"
    )
