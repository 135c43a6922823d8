"""Render invoice PDFs again: one invoice (`--invoice ID`), the issued invoices without a file
(`--missing`), or every issued invoice. Safe to repeat: a rendering replaces the file only."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from invoicing import pdf
from invoicing.models import Invoice, InvoiceStatus


class Command(BaseCommand):
    help = "Render invoice PDFs again (--invoice ID, or --missing for issued invoices without one)."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--invoice", help="The invoice's id (lago_id) or number")
        target.add_argument("--missing", action="store_true", help="Only issued invoices without a PDF")
        parser.add_argument("--dry-run", action="store_true", help="List what would be rendered")

    def handle(self, *args: Any, **options: Any) -> None:
        invoices = Invoice.objects.filter(status__in=[InvoiceStatus.FINALIZED, InvoiceStatus.VOIDED])
        if options["invoice"]:
            reference = options["invoice"]
            matches = Invoice.objects.filter(number=reference)
            if not matches.exists():
                try:
                    matches = Invoice.objects.filter(pk=reference)
                    matches.exists()
                except Exception:  # not a uuid
                    matches = Invoice.objects.none()
            invoices = matches
            if not invoices.exists():
                raise CommandError(f"no invoice {reference}")
        elif options["missing"]:
            invoices = invoices.filter(file="")
        ids = list(invoices.order_by("issuing_date", "number").values_list("pk", flat=True))
        if options["dry_run"]:
            self.stdout.write(f"would render {len(ids)} PDF(s)")
            return
        rendered = failed = 0
        for invoice_id in ids:
            invoice = Invoice.objects.get(pk=invoice_id)
            try:
                pdf.invoice_pdf_render(invoice=invoice, actor="command:regenerate_pdfs")
            except Exception as error:  # report and go on: one bad document must not stop the rest
                failed += 1
                self.stderr.write(f"{invoice}: {error}")
                continue
            rendered += 1
        style = self.style.SUCCESS if not failed else self.style.WARNING
        self.stdout.write(style(f"regenerate_pdfs: {rendered} rendered, {failed} failed"))
