"""The issue e-mails: receivers of invoicing's own *_in_tx signals (connected in ready()), so the
outbox row commits with the finalized invoice or the issued credit note."""

from __future__ import annotations

from typing import Any

from customers.models import Organization

from ..models import CreditNote, Invoice
from .services import document_email_on_issue


def on_invoice_finalized(
    sender: Any,
    *,
    invoice_id: Any,
    invoice: Invoice | None = None,
    organization: Organization | None = None,
    **kwargs: Any,
) -> None:
    """`invoice` (saved, its customer loaded) and `organization`: the period run's, in memory
    (no query here); otherwise both are read."""
    if invoice is None or invoice.pk != invoice_id:
        invoice = Invoice.objects.select_related("customer").only("pk", "customer__email").get(pk=invoice_id)
    document_email_on_issue(
        document_type="invoice",
        document_id=invoice.pk,
        invoice_id=invoice.pk,
        customer_email=invoice.customer.email,
        actor="system:email",
        organization=organization,
    )


def on_credit_note_created(sender: Any, *, credit_note_id: Any, **kwargs: Any) -> None:
    note = (
        CreditNote.objects.select_related("customer").only("pk", "invoice_id", "customer__email").get(pk=credit_note_id)
    )
    document_email_on_issue(
        document_type="credit_note",
        document_id=note.pk,
        invoice_id=note.invoice_id,
        customer_email=note.customer.email,
        actor="system:email",
    )
