"""A customer's statement of account: per currency, its invoices, payments, credit notes and
refunds in date order with a running balance (what the customer owes; negative: what is owed to
the customer), as a console page and a PDF.

Lines (dates in the organization's timezone):
- invoice (finalized; open credit invoices and drafts are not invoices yet): a debit of what it
  charged before credit-note credits (total + credit notes applied), since those credit notes
  were credited when they were issued; a voided invoice is credited back on its void date;
- correction invoice (invoice_type "correction", when that exists): the same, said to correct
  the invoice it names;
- payment (succeeded): a credit on its payment date;
- credit note: a credit of its credit and refund amounts on its issuing date;
- refund paid out: a debit of the refund amount when the refund succeeded.
Prepaid credits need no line: the top-up's credit invoice and its payment are lines, and an
invoice the wallet paid is stated net of it.
Four queries whatever the number of lines.
"""

from __future__ import annotations

import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from billing_project.local_time import format_instant
from billing_project.money import format_money
from customers.models import Customer, Organization
from invoicing.models import CreditNote, Invoice, InvoiceStatus, InvoiceType, RefundStatus
from invoicing.pdf import render_pdf

from .models import Payment, PaymentStatus

ZERO = Decimal(0)
PERMISSIONS = ("customers.view_customer", "invoicing.view_invoice", "payments.view_payment")
# Where helper "late"'s correction invoices land (invoice_type "correction", `corrected_invoice`).
CORRECTION_TYPE = "correction"


@dataclass
class Line:
    day: date
    order: int  # same day: invoices, then credit notes, then payments, then refunds
    kind: str
    reference: str
    description: str
    debit: Decimal = ZERO
    credit: Decimal = ZERO
    url: str = ""
    balance: Decimal = ZERO


@dataclass
class CurrencyStatement:
    currency: str
    opening: Decimal = ZERO
    lines: list[Line] = field(default_factory=list)

    @property
    def closing(self) -> Decimal:
        return self.lines[-1].balance if self.lines else self.opening

    @property
    def debits(self) -> Decimal:
        return sum((line.debit for line in self.lines), ZERO)

    @property
    def credits(self) -> Decimal:
        return sum((line.credit for line in self.lines), ZERO)


def _local(instant: datetime | None, tz: zoneinfo.ZoneInfo) -> date | None:
    return instant.astimezone(tz).date() if instant else None


def customer_statement(
    *, customer: Customer, tz_name: str, since: date | None = None, until: date | None = None
) -> list[CurrencyStatement]:
    """The statement per currency; lines before `since` make the opening balance, lines after
    `until` are left out."""
    tz = zoneinfo.ZoneInfo(tz_name or "UTC")
    lines: dict[str, list[Line]] = defaultdict(list)
    placeholder = "00000000-0000-0000-0000-000000000000"
    invoice_url = reverse("admin:invoicing_invoice_change", args=[placeholder])
    note_url = reverse("admin:invoicing_creditnote_change", args=[placeholder])
    payment_url = reverse("admin:payments_payment_change", args=[placeholder])

    invoices = list(
        Invoice.objects.filter(customer=customer, finalized_at__isnull=False)
        .filter(status__in=[InvoiceStatus.FINALIZED, InvoiceStatus.VOIDED])
        .order_by("issuing_date", "finalized_at")
    )
    numbers = {invoice.pk: invoice.number for invoice in invoices}
    for invoice in invoices:
        charged = invoice.total_amount + invoice.credit_notes_amount
        corrected = getattr(invoice, "corrected_invoice_id", None)
        if invoice.invoice_type == CORRECTION_TYPE and corrected:
            kind, description = "correction", f"Correction of {numbers.get(corrected, 'an earlier invoice')}"
        elif invoice.invoice_type == InvoiceType.CREDIT:
            kind, description = "invoice", "Prepaid credits (wallet top-up)"
        else:
            kind, description = (
                "invoice",
                f"{invoice.get_invoice_type_display()} invoice, due {invoice.payment_due_date}",
            )
        url = invoice_url.replace(placeholder, str(invoice.pk))
        lines[invoice.currency].append(
            Line(invoice.issuing_date, 0, kind, invoice.number, description, debit=charged, url=url)
        )
        if invoice.status == InvoiceStatus.VOIDED:
            voided_on = _local(invoice.voided_at, tz) or invoice.issuing_date
            lines[invoice.currency].append(
                Line(voided_on, 1, "void", invoice.number, "Invoice voided", credit=charged, url=url)
            )

    notes = (
        CreditNote.objects.filter(invoice__customer=customer)
        .annotate(invoice_number=F("invoice__number"))
        .order_by("issuing_date", "created_at")
    )
    for note in notes:
        url = note_url.replace(placeholder, str(note.pk))
        amount = note.credit_amount + note.refund_amount
        if amount > 0:
            parts = [
                f"{label} {format_money(value, note.currency)}"
                for label, value in (("credit", note.credit_amount), ("refund", note.refund_amount))
                if value > 0
            ]
            lines[note.currency].append(
                Line(
                    note.issuing_date,
                    2,
                    "credit note",
                    str(note),  # finalized: its number
                    f"On {note.invoice_number}: {', '.join(parts)}",
                    credit=amount,
                    url=url,
                )
            )
        if note.refund_amount > 0 and note.refund_status == RefundStatus.SUCCEEDED:
            refunded_on = _local(note.refunded_at or note.updated_at, tz) or note.issuing_date
            lines[note.currency].append(
                Line(refunded_on, 4, "refund", str(note), "Refund paid out", debit=note.refund_amount, url=url)
            )

    payments = Payment.objects.filter(customer=customer, status=PaymentStatus.SUCCEEDED).annotate(
        invoice_number=F("invoice__number")
    )
    for payment in payments:
        paid_at = payment.paid_at or payment.created_at
        lines[payment.currency].append(
            Line(
                _local(paid_at, tz) or timezone.localdate(),
                3,
                "payment",
                payment.reference or payment.provider_payment_id or str(payment.pk)[:8],
                f"{payment.get_provider_display()} payment for {payment.invoice_number}",
                credit=payment.amount,
                url=payment_url.replace(placeholder, str(payment.pk)),
            )
        )

    statements = []
    for currency in sorted(lines):
        statement = CurrencyStatement(currency=currency)
        balance = ZERO
        for line in sorted(lines[currency], key=lambda line: (line.day, line.order, line.reference)):
            if until is not None and line.day > until:
                continue
            balance += line.debit - line.credit
            line.balance = balance
            if since is not None and line.day < since:
                statement.opening = balance
                continue
            statement.lines.append(line)
        statements.append(statement)
    return statements


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _context(statements: list[CurrencyStatement]) -> list[dict[str, Any]]:
    def money(value: Decimal, code: str) -> str:
        return format_money(value, code) if value else ""

    return [
        {
            "currency": s.currency,
            "opening": format_money(s.opening, s.currency),
            "closing": format_money(s.closing, s.currency),
            "debits": format_money(s.debits, s.currency),
            "credits": format_money(s.credits, s.currency),
            "lines": [
                {
                    "day": line.day,
                    "kind": line.kind,
                    "reference": line.reference,
                    "description": line.description,
                    "debit": money(line.debit, s.currency),
                    "credit": money(line.credit, s.currency),
                    "balance": format_money(line.balance, s.currency),
                    "url": line.url,
                }
                for line in s.lines
            ],
        }
        for s in statements
    ]


@staff_member_required
def statement_view(request: HttpRequest, customer_id: str) -> HttpResponse:
    """The statement page; `?format=pdf` for the same as a PDF (rendered, not stored)."""
    if not request.user.has_perms(PERMISSIONS):
        raise PermissionDenied
    customer = get_object_or_404(Customer, pk=customer_id)
    organization = Organization.current()
    tz_name = organization.timezone or "UTC"
    since, until = _date(request.GET.get("since")), _date(request.GET.get("until"))
    statements = _context(customer_statement(customer=customer, tz_name=tz_name, since=since, until=until))
    period = f"{since or 'the first invoice'} to {until or 'today'}"
    context: dict[str, Any] = {
        "customer": customer,
        "organization": organization,
        "statements": statements,
        "period": period,
        "as_of": format_instant(timezone.now(), tz_name),
        "timezone": tz_name,
        "since": request.GET.get("since", ""),
        "until": request.GET.get("until", ""),
    }
    if request.GET.get("format") == "pdf":
        data = render_pdf("payments/statement.html", context)
        response = HttpResponse(data, content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="statement-{customer.external_id}.pdf"'
        return response
    query = request.GET.copy()
    query["format"] = "pdf"
    context.update(
        {
            **admin.site.each_context(request),
            "title": f"Statement of account: {customer.name or customer.external_id} ({customer.external_id})",
            "pdf_url": f"{request.path}?{query.urlencode()}",
            "customer_url": reverse("admin:console-customer", args=[customer.pk]),
        }
    )
    return TemplateResponse(request, "admin/tollgate/statement.html", context)
