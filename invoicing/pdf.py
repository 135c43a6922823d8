"""PDF rendering of invoices and credit notes (xhtml2pdf, table layouts; what they say is
invoicing.documents') and signed, expiring download links.

- invoice_pdf_render(*, invoice, actor=...) -> None: render templates/invoicing/invoice.html, store
  it in invoice.file (only that column is written: the invoice itself never changes), write an
  InvoiceEvent("pdf_generated").
- invoice_pdf_preview(*, invoice) -> bytes: the same rendering of a draft, returned, never stored.
- credit_note_pdf_render(*, credit_note, actor=...) -> None: the same for a credit note.
- signed_file_url(*, obj, base_url=None) -> str: an absolute link signed with
  django.core.signing (TimestampSigner), valid settings.TOLLGATE_PDF_LINK_MAX_AGE seconds. The
  signature is the credential: the view serving it needs no API key.
"""

from __future__ import annotations

import io
import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from .documents import credit_note_context, invoice_context
from .models import CreditNote, Invoice, InvoiceEvent, InvoiceStatus

logger = logging.getLogger(__name__)

SIGNING_SALT = "invoicing.pdf-link"


class PdfRenderError(RuntimeError):
    """xhtml2pdf could not lay the document out."""


# --------------------------------------------------------------------------------------------
# Rendering


def render_pdf(template: str, context: dict[str, Any]) -> bytes:
    from xhtml2pdf import pisa

    html = render_to_string(template, context)
    output = io.BytesIO()
    result = pisa.CreatePDF(html, dest=output, encoding="utf-8")
    if result.err:
        raise PdfRenderError(f"{template}: {result.err} layout error(s)")
    return output.getvalue()


def _store(obj: Invoice | CreditNote, data: bytes) -> str:
    """Write the new file, point the row's `file` column (and nothing else) at it, drop the old one."""
    old_name = obj.file.name if obj.file else ""
    field = type(obj)._meta.get_field("file")
    name = field.storage.save(field.generate_filename(obj, f"{obj.pk}.pdf"), ContentFile(data))
    type(obj).objects.filter(pk=obj.pk).update(file=name)
    obj.file.name = name
    if old_name and old_name != name:
        # After commit, so a rolled-back render never loses the file the row still points at.
        transaction.on_commit(lambda: field.storage.delete(old_name))
    return name


def _invoice_for_pdf(invoice: Invoice) -> Invoice:
    from .api.queries import invoices_in_full

    return invoices_in_full().get(pk=invoice.pk)


def invoice_pdf_render(*, invoice: Invoice, actor: str = "system:pdf") -> None:
    """Render and store the invoice's PDF (safe to repeat: the newest rendering replaces the file)."""
    fresh = _invoice_for_pdf(invoice)
    data = render_pdf("invoicing/invoice.html", invoice_context(fresh))
    with transaction.atomic():
        name = _store(fresh, data)
        InvoiceEvent.objects.create(
            invoice=fresh, kind="pdf_generated", actor=actor, payload={"file": name, "bytes": len(data)}
        )
    invoice.file.name = name


def invoice_pdf_preview(*, invoice: Invoice) -> bytes:
    """The PDF a draft would have today (marked DRAFT by its watermark), rendered and never
    stored: the draft's file, its row and its audit trail are left as they are."""
    return render_pdf("invoicing/invoice.html", invoice_context(_invoice_for_pdf(invoice)))


# A finalized invoice's PDF is rendered by the task its finalization sends; one still without a
# file this long after lost its task (broker down, worker killed, renderer failed).
PDF_MISSED_AFTER = timedelta(minutes=10)
PDF_MISSED_WITHIN = timedelta(days=7)
PDF_MISSED_BATCH = 500


def invoices_missing_pdf(*, now: datetime) -> list[Any]:
    """Ids of finalized invoices of the last PDF_MISSED_WITHIN without a PDF, newest first (an
    invoice whose rendering keeps failing cannot starve the others of later runs)."""
    return list(
        Invoice.objects.filter(
            status=InvoiceStatus.FINALIZED,
            file="",
            finalized_at__lte=now - PDF_MISSED_AFTER,
            finalized_at__gte=now - PDF_MISSED_WITHIN,
        )
        .order_by("-finalized_at")
        .values_list("pk", flat=True)[:PDF_MISSED_BATCH]
    )


def credit_note_pdf_render(*, credit_note: CreditNote, actor: str = "system:pdf") -> None:
    fresh = (
        CreditNote.objects.select_related("invoice__customer")
        .prefetch_related(
            "applied_taxes",
            "items__fee__charge__billable_metric",
            "items__fee__charge_filter",
            "items__fee__subscription__plan",
            "items__fee__add_on",
        )
        .get(pk=credit_note.pk)
    )
    data = render_pdf("invoicing/credit_note.html", credit_note_context(fresh))
    with transaction.atomic():
        name = _store(fresh, data)
        InvoiceEvent.objects.create(
            invoice_id=fresh.invoice_id,
            credit_note=fresh,
            kind="credit_note_pdf_generated",
            actor=actor,
            payload={"file": name, "bytes": len(data)},
        )
    credit_note.file.name = name


# --------------------------------------------------------------------------------------------
# Signed links


_KINDS: dict[str, type[Invoice] | type[CreditNote]] = {"invoice": Invoice, "credit_note": CreditNote}


def sign_document(obj: Invoice | CreditNote) -> str:
    kind = "credit_note" if isinstance(obj, CreditNote) else "invoice"
    return signing.TimestampSigner(salt=SIGNING_SALT).sign_object({"k": kind, "id": str(obj.pk)})


def signed_file_url(*, obj: Invoice | CreditNote, base_url: str | None = None) -> str:
    """An absolute link to the document's PDF, valid TOLLGATE_PDF_LINK_MAX_AGE seconds."""
    base = (base_url or settings.TOLLGATE_PUBLIC_URL).rstrip("/")
    return base + reverse("invoicing-document", args=[sign_document(obj)])


def document_from_token(token: str) -> Invoice | CreditNote | None:
    """The document a link names; raises signing.BadSignature (SignatureExpired included) when the
    link was tampered with or has expired; None when the document no longer exists."""
    payload = signing.TimestampSigner(salt=SIGNING_SALT).unsign_object(
        token, max_age=settings.TOLLGATE_PDF_LINK_MAX_AGE
    )
    if not isinstance(payload, dict) or payload.get("k") not in _KINDS:
        raise signing.BadSignature("unknown document kind")
    model = _KINDS[payload["k"]]
    document_id = payload.get("id")
    if document_id is None:
        return None
    return model.objects.filter(pk=document_id).first()
