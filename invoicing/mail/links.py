"""The links the documents' e-mails carry.

`invoice_pay_link` is the one place an e-mail asks for an invoice's "pay" link. Until the customer
portal provides a payment page, it answers the invoice's signed PDF link (the customer sees what
to pay and the issuer's details). The portal plugs its payment URL in with
`invoice_pay_link_register(builder)` from its AppConfig.ready(); every e-mail then uses it.
"""

from __future__ import annotations

from collections.abc import Callable

from ..models import Invoice
from ..pdf import signed_file_url

PayLinkBuilder = Callable[[Invoice, str | None], str]


def invoice_pdf_link(invoice: Invoice, base_url: str | None = None) -> str:
    """The invoice's signed, expiring PDF link (TOLLGATE_PDF_LINK_MAX_AGE)."""
    return signed_file_url(obj=invoice, base_url=base_url)


_pay_link_builder: PayLinkBuilder = invoice_pdf_link


def invoice_pay_link_register(builder: PayLinkBuilder) -> None:
    """Replace the pay link every e-mail carries (the portal's payment URL)."""
    global _pay_link_builder
    _pay_link_builder = builder


def invoice_pay_link(*, invoice: Invoice, base_url: str | None = None) -> str:
    """Where the customer pays `invoice` (for now its signed PDF link, see the module docstring)."""
    return _pay_link_builder(invoice, base_url)
