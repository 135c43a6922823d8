"""PDF rendering of invoices and credit notes (xhtml2pdf) and signed, expiring download links.

Contract (filled by the invoicing surface work; until then rendering is a no-op):
- invoice_pdf_render(*, invoice) -> None: render templates/invoicing/invoice.html, store it in
  invoice.file, write an InvoiceEvent("pdf_generated").
- credit_note_pdf_render(*, credit_note) -> None: the same for a credit note.
- signed_file_url(*, obj) -> str: an absolute, signed link that expires
  (settings.TOLLGATE_PDF_LINK_MAX_AGE seconds).
"""

from __future__ import annotations

from typing import Any


def invoice_pdf_render(*, invoice: Any) -> None:
    return None


def credit_note_pdf_render(*, credit_note: Any) -> None:
    return None


def signed_file_url(*, obj: Any) -> str:
    return ""
