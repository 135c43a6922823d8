"""Payment receipts: one per succeeded payment, numbered per customer without gaps, with a PDF
and a signed download link; e-mailed when the organization's email_settings ask for it.

- payment_receipt_issue(*, payment): inside the payment's transaction (the number is taken from a
  django-sequences row locked until commit, so a rolled-back payment gives its number back).
- payment_receipt_pdf_render(*, receipt): the PDF (xhtml2pdf, the invoices' layout).
- signed_receipt_url / receipt_from_token: links valid TOLLGATE_PDF_LINK_MAX_AGE seconds.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.urls import reverse
from sequences import get_next_value

from billing_project.after_commit import delay_after_commit
from billing_project.money import format_money
from customers.models import Organization
from invoicing.documents import format_date, invoice_customer_details, issuer_details
from invoicing.mail.documents import DocumentMessage, file_bytes, render_message
from invoicing.mail.services import document_email_on_issue
from invoicing.models import InvoiceEvent
from invoicing.numbering import customer_sequential_id
from invoicing.pdf import render_pdf

from .models import Payment, PaymentReceipt, PaymentStatus
from .signals import payment_receipt_created_in_tx

SIGNING_SALT = "payments.receipt-link"


def receipt_number(*, prefix: str, customer_sequence: int, receipt_sequence: int) -> str:
    """Lago's receipt number: the customer's slug, RCPT, and the customer's receipt counter on at
    least 6 digits (lago-api db/structure.sql, set_payment_receipt_number)."""
    return f"{prefix}-{customer_sequence:03d}-RCPT-{receipt_sequence:06d}"


def payment_receipt_issue(*, payment: Payment, actor: str = "system:payments") -> PaymentReceipt | None:
    """The receipt of a succeeded payment (its transaction; once: a second call returns it)."""
    assert transaction.get_connection().in_atomic_block, "a receipt is issued in the payment's transaction"
    if payment.status != PaymentStatus.SUCCEEDED:
        return None
    existing = PaymentReceipt.objects.filter(payment=payment).first()
    if existing is not None:
        return existing
    customer = payment.invoice.customer
    organization = Organization.current()
    sequence = get_next_value(f"payments.receipt.customer.{customer.pk}")
    try:
        with transaction.atomic():
            receipt = PaymentReceipt.objects.create(
                payment=payment,
                invoice=payment.invoice,
                customer=customer,
                sequential_id=sequence,
                number=receipt_number(
                    prefix=organization.document_number_prefix,
                    customer_sequence=customer_sequential_id(customer),
                    receipt_sequence=sequence,
                ),
            )
    except IntegrityError:  # pragma: no cover - the payment row is locked by the caller
        return PaymentReceipt.objects.get(payment=payment)
    InvoiceEvent.objects.create(
        invoice_id=payment.invoice_id,
        kind="payment_receipt_created",
        actor=actor,
        payload={"number": receipt.number, "payment_id": str(payment.pk), "amount": str(payment.amount)},
    )
    payment_receipt_created_in_tx.send(sender=PaymentReceipt, payment_receipt_id=receipt.pk)
    document_email_on_issue(
        document_type="payment_receipt",
        document_id=receipt.pk,
        invoice_id=payment.invoice_id,
        customer_email=customer.email,
        actor=actor,
    )
    from .tasks import render_payment_receipt_pdf

    delay_after_commit(render_payment_receipt_pdf, str(receipt.pk))
    return receipt


def receipt_context(receipt: PaymentReceipt) -> dict[str, Any]:
    payment = receipt.payment
    invoice = receipt.invoice
    organization = issuer_details(invoice, Organization.current())
    paid_on = payment.paid_at.date() if payment.paid_at else None
    # What the invoice still owed once this payment was in (later payments do not change it).
    paid_so_far = sum(
        (
            row.amount
            for row in invoice.payments.filter(status=PaymentStatus.SUCCEEDED, created_at__lte=payment.created_at)
        ),
        start=Decimal(0),
    )
    due_after = max(invoice.total_amount - paid_so_far, Decimal(0))
    return {
        "receipt": receipt,
        "invoice": invoice,
        "payment": payment,
        "organization": organization,
        "customer": invoice_customer_details(invoice),
        "title": "Payment receipt",
        "number": receipt.number,
        "watermark": "",
        "paid_on": format_date(paid_on),
        "method": payment.get_provider_display(),
        "reference": payment.reference or payment.provider_payment_id,
        "amount_paid": format_money(payment.amount, payment.currency),
        "invoice_total": format_money(invoice.total_amount, invoice.currency),
        "invoice_due": format_money(due_after, invoice.currency),
        "footer": organization["invoice_footer"],
    }


def payment_receipt_pdf_render(*, receipt: PaymentReceipt) -> bytes:
    fresh = PaymentReceipt.objects.select_related("payment", "invoice__customer").get(pk=receipt.pk)
    data = render_pdf("payments/receipt.html", receipt_context(fresh))
    field = PaymentReceipt._meta.get_field("file")
    old_name = fresh.file.name if fresh.file else ""
    with transaction.atomic():
        name = field.storage.save(field.generate_filename(fresh, f"{fresh.pk}.pdf"), ContentFile(data))
        PaymentReceipt.objects.filter(pk=fresh.pk).update(file=name)
        if old_name and old_name != name:
            transaction.on_commit(lambda: field.storage.delete(old_name))
    receipt.file.name = name
    return data


def sign_receipt(receipt: PaymentReceipt) -> str:
    return signing.TimestampSigner(salt=SIGNING_SALT).sign_object({"id": str(receipt.pk)})


def signed_receipt_url(*, receipt: PaymentReceipt, base_url: str | None = None) -> str:
    base = (base_url or settings.TOLLGATE_PUBLIC_URL).rstrip("/")
    return base + reverse("payment-receipt-document", args=[sign_receipt(receipt)])


def receipt_from_token(token: str) -> PaymentReceipt | None:
    """Raises signing.BadSignature (SignatureExpired included) for a tampered or expired link."""
    payload = signing.TimestampSigner(salt=SIGNING_SALT).unsign_object(
        token, max_age=settings.TOLLGATE_PDF_LINK_MAX_AGE
    )
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
        raise signing.BadSignature("no receipt id")
    return PaymentReceipt.objects.filter(pk=payload["id"]).first()


def payment_receipt_message(receipt_id: UUID, base_url: str | None = None) -> DocumentMessage | None:
    """The receipt's e-mail (registered with invoicing.mail in PaymentsConfig.ready)."""
    receipt = PaymentReceipt.objects.select_related("payment", "invoice").filter(pk=receipt_id).first()
    if receipt is None:
        return None
    if not receipt.file:
        payment_receipt_pdf_render(receipt=receipt)
    payment = receipt.payment
    subject, text, html = render_message(
        organization=Organization.current(),
        subject_key="payment_receipt_subject",
        intro_key="payment_receipt_intro",
        values={"number": receipt.number},
        rows=[
            ("number", receipt.number),
            ("invoice", receipt.invoice.number),
            ("amount_paid", format_money(payment.amount, payment.currency)),
            ("paid_on", format_date(payment.paid_at.date() if payment.paid_at else None)),
        ],
        buttons=[("download", signed_receipt_url(receipt=receipt, base_url=base_url))],
    )
    return DocumentMessage(
        subject=subject,
        text=text,
        html=html,
        attachments=[(f"receipt-{receipt.number}.pdf", file_bytes(receipt), "application/pdf")],
        invoice_ids=[receipt.invoice_id],
    )
