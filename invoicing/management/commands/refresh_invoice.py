"""Compute draft invoices again from current usage (late events, changed coupons).

python manage.py refresh_invoice INVOICE_ID [INVOICE_ID ...] | --all-drafts
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from invoicing import services
from invoicing.errors import InvoicingError
from invoicing.models import Invoice, InvoiceStatus


class Command(BaseCommand):
    help = "Refresh draft invoices (finalized ones never change)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("invoice_ids", nargs="*")
        parser.add_argument("--all-drafts", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        ids = list(options["invoice_ids"])
        if options["all_drafts"]:
            ids += [str(pk) for pk in Invoice.objects.filter(status=InvoiceStatus.DRAFT).values_list("pk", flat=True)]
        if not ids:
            raise CommandError("give invoice ids or --all-drafts")
        for invoice_id in ids:
            try:
                invoice = services.invoice_refresh(invoice=Invoice(pk=invoice_id), actor="command:refresh_invoice")
            except InvoicingError as error:
                self.stderr.write(f"{invoice_id}: {error.code}")
                continue
            if invoice.status != InvoiceStatus.DRAFT:
                self.stdout.write(f"{invoice_id}: {invoice.status}, left as it is")
            else:
                self.stdout.write(f"{invoice_id}: refreshed, total {invoice.total_amount} {invoice.currency}")
