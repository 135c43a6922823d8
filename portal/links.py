"""The pay links e-mails carry, once the portal is installed: the customer's portal page (valid
TOLLGATE_PORTAL_LINK_MAX_AGE), opened at the invoice, where Pay now starts Stripe Checkout. An
invoice the portal cannot take payment for keeps the signed PDF link."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from invoicing.mail.links import invoice_pdf_link
from invoicing.models import Invoice

from . import selectors
from .services import portal_url_build


def invoice_pay_link(invoice: Invoice, base_url: str | None = None) -> str:
    if not (selectors.can_pay_online(invoice.customer) and selectors.invoice_is_payable(invoice)):
        return invoice_pdf_link(invoice, base_url)
    base = base_url or settings.TOLLGATE_PUBLIC_URL
    return portal_url_build(customer=invoice.customer, base_url=base) + f"#invoice-{invoice.pk}"


def payment_request_pay_link(payment_request: Any, base_url: str | None = None) -> str | None:
    """A payment request's invoices, each with Pay now, are on the customer's portal page."""
    if not selectors.can_pay_online(payment_request.customer):
        return None
    return portal_url_build(customer=payment_request.customer, base_url=base_url or settings.TOLLGATE_PUBLIC_URL)
