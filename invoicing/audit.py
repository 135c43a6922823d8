"""Admin changes that need more audit than the service records: a void's reason.

A small function beside the service (services.invoice_void is the API's and stays as it is):
the void and the row keeping its reason are one transaction, so no void is ever without it.
"""

from __future__ import annotations

from django.db import transaction

from . import services
from .errors import InvoicingError
from .models import Invoice, InvoiceEvent

REASON_MAX_LENGTH = 500


@transaction.atomic
def invoice_void_with_reason(*, invoice: Invoice, actor: str, reason: str) -> Invoice:
    reason = reason.strip()
    if not reason:
        raise InvoicingError.field("reason", "value_is_mandatory")
    if len(reason) > REASON_MAX_LENGTH:
        raise InvoicingError.field("reason", "value_is_too_long")
    invoice = services.invoice_void(invoice=invoice, actor=actor)
    InvoiceEvent.objects.create(invoice=invoice, kind="void_reason", actor=actor, payload={"reason": reason})
    return invoice
