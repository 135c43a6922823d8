"""Row locks of the invoicing app's aggregates: an invoice, then its credit notes (in creation
order). Taken after the customer's and subscription's locks (customers.locks, plans.locks);
payments locks invoices through here too."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import NotFoundError
from .models import CreditNote, Invoice


def lock_invoice(invoice: Invoice | Any) -> Invoice:
    """The invoice's row alone, locked until commit (its customer joined, only read). An unknown
    id is NotFoundError("invoice")."""
    pk = invoice.pk if isinstance(invoice, Invoice) else invoice
    try:
        return Invoice.objects.select_for_update(of=("self",)).select_related("customer").get(pk=pk)
    except (Invoice.DoesNotExist, ValueError, TypeError):
        raise NotFoundError("invoice") from None


def lock_credit_note(credit_note: CreditNote | Any) -> CreditNote:
    pk = credit_note.pk if isinstance(credit_note, CreditNote) else credit_note
    return CreditNote.all_objects.select_for_update().get(pk=pk)


def lock_credit_notes(ids: Iterable[Any]) -> list[CreditNote]:
    """Several credit notes, always locked in the same order (created_at, id)."""
    return list(CreditNote.all_objects.select_for_update().filter(pk__in=list(ids)).order_by("created_at", "id"))
