"""What each e-mailed document says: a registry of builders by document type.

A builder renders one document's message (subject, text and HTML bodies in the organization's
locale and branding, its PDF attached) from the document's id. invoicing registers invoices and
credit notes; apps to the right register theirs in AppConfig.ready() (payments: receipts and
payment requests), so the outbox sends them all without invoicing importing them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.template.loader import render_to_string

from billing_project.money import format_money
from customers.models import Organization

from .. import pdf
from ..documents import format_date
from ..models import CreditNote, Invoice, InvoiceStatus
from .links import invoice_pay_link
from .locales import words

# Lago's email_settings value that turns the issue e-mail of each document type on.
EMAIL_SETTING_OF: dict[str, str] = {
    "invoice": "invoice.finalized",
    "credit_note": "credit_note.created",
    "payment_receipt": "payment_receipt.created",
}


@dataclass
class DocumentMessage:
    subject: str
    text: str
    html: str
    # (filename, bytes, mimetype)
    attachments: list[tuple[str, bytes, str]] = field(default_factory=list)
    # The timelines (invoices) the message shows on.
    invoice_ids: list[Any] = field(default_factory=list)


Builder = Callable[[UUID, str | None], DocumentMessage | None]
_BUILDERS: dict[str, Builder] = {}


def document_type_register(document_type: str, builder: Builder) -> None:
    _BUILDERS[document_type] = builder


def document_message(document_type: str, document_id: UUID, base_url: str | None = None) -> DocumentMessage | None:
    """The message of a document; None when the document no longer exists."""
    return _BUILDERS[document_type](document_id, base_url)


def render_message(
    *,
    organization: Organization,
    subject_key: str,
    intro_key: str,
    values: dict[str, str],
    rows: list[tuple[str, str]] | None = None,
    items: list[dict[str, str]] | None = None,
    buttons: list[tuple[str, str]] | None = None,
    attached: bool = True,
) -> tuple[str, str, str]:
    """(subject, text, html) in the organization's locale, with its name, address and footer."""
    locale = organization.document_locale or "en"
    w = words(locale)
    filled = {"organization": organization.name, **values}
    subject = w[subject_key].format(**filled)
    context = {
        "locale": locale,
        "subject": subject,
        "organization": organization,
        "intro": w[intro_key].format(**filled),
        "rows": [(w[label], value) for label, value in rows or []],
        "items": items or [],
        "buttons": [{"label": w[label], "url": url} for label, url in buttons or []],
        "attached": w["attached"] if attached else "",
        "questions": w["questions"].format(email=organization.email) if organization.email else "",
    }
    text = render_to_string("emails/document.txt", context)
    html = render_to_string("emails/document.html", context)
    return subject, text, html


def file_bytes(document: Any) -> bytes:
    with document.file.open("rb") as handle:
        data: bytes = handle.read()
    return data


def invoice_message(invoice_id: UUID, base_url: str | None = None) -> DocumentMessage | None:
    invoice = Invoice.objects.select_related("customer").filter(pk=invoice_id).first()
    if invoice is None:
        return None
    if not invoice.file:
        pdf.invoice_pdf_render(invoice=invoice, actor="system:email")
    organization = Organization.current()
    rows = [
        ("number", invoice.number),
        ("issuing_date", format_date(invoice.issuing_date)),
        ("due_date", format_date(invoice.payment_due_date)),
        ("total", format_money(invoice.total_amount, invoice.currency)),
    ]
    buttons = [("download", pdf.signed_file_url(obj=invoice, base_url=base_url))]
    if invoice.status == InvoiceStatus.FINALIZED and invoice.total_due_amount > 0:
        rows.append(("amount_due", format_money(invoice.total_due_amount, invoice.currency)))
        buttons.insert(0, ("pay", invoice_pay_link(invoice=invoice, base_url=base_url)))
    subject, text, html = render_message(
        organization=organization,
        subject_key="invoice_subject",
        intro_key="invoice_intro",
        values={"number": invoice.number},
        rows=rows,
        buttons=buttons,
    )
    return DocumentMessage(
        subject=subject,
        text=text,
        html=html,
        attachments=[(f"invoice-{invoice.number}.pdf", file_bytes(invoice), "application/pdf")],
        invoice_ids=[invoice.pk],
    )


def credit_note_message(credit_note_id: UUID, base_url: str | None = None) -> DocumentMessage | None:
    note = CreditNote.objects.select_related("invoice", "customer").filter(pk=credit_note_id).first()
    if note is None:
        return None
    if not note.file:
        pdf.credit_note_pdf_render(credit_note=note, actor="system:email")
    organization = Organization.current()
    subject, text, html = render_message(
        organization=organization,
        subject_key="credit_note_subject",
        intro_key="credit_note_intro",
        values={"number": str(note), "invoice": note.invoice.number},
        rows=[
            ("number", str(note)),
            ("issuing_date", format_date(note.issuing_date)),
            ("total", format_money(note.total_amount, note.currency)),
        ],
        buttons=[("download", pdf.signed_file_url(obj=note, base_url=base_url))],
    )
    return DocumentMessage(
        subject=subject,
        text=text,
        html=html,
        attachments=[(f"credit_note-{note.number}.pdf", file_bytes(note), "application/pdf")],
        invoice_ids=[note.invoice_id],
    )


document_type_register("invoice", invoice_message)
document_type_register("credit_note", credit_note_message)
