"""A customer's statement of account, page and PDF, with a hand-computed running balance.

USD, in the organization's timezone (Europe/Paris):
  2026-05-01 invoice A              debit 1,000.00  balance 1,000.00
  2026-05-10 payment (wire 1)       credit  400.00  balance   600.00
  2026-06-01 invoice B              debit   250.00  balance   850.00
  2026-06-05 invoice B voided       credit  250.00  balance   600.00
  credit note on A (today)          credit  100.00  balance   500.00
The closing 500.00 is the outstanding 600.00 less the 100.00 of credit the customer holds.
EUR: one invoice of 50.00.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pypdf import PdfReader

from customers.models import Organization
from invoicing import services as invoicing_services
from invoicing.models import Invoice
from payments.services import payment_create_manual
from payments.statement import customer_statement
from tests.console.test_admin_console import _user
from tests.factories.credit_notes import fee_of, make_credit_note, make_invoice
from tests.factories.customers import make_customer

pytestmark = pytest.mark.django_db


def _dated(invoice: Invoice, day: date) -> Invoice:
    Invoice.objects.filter(pk=invoice.pk).update(issuing_date=day)
    invoice.refresh_from_db()
    return invoice


@pytest.fixture
def ledger(db):
    organization = Organization.current()
    organization.timezone = "Europe/Paris"
    organization.save()
    customer = make_customer(external_id="stmt", name="Statement Co", currency="USD")
    a = _dated(make_invoice(customer=customer, fees=[{"amount": "1000.00"}]), date(2026, 5, 1))
    payment_create_manual(
        invoice_id=a.pk, amount_cents=40000, reference="wire 1", paid_at=datetime(2026, 5, 10, 12, tzinfo=UTC)
    )
    b = _dated(make_invoice(customer=customer, fees=[{"amount": "250.00"}]), date(2026, 6, 1))
    invoicing_services.invoice_void(invoice=b, actor="test", now=datetime(2026, 6, 5, 9, tzinfo=UTC))
    make_credit_note(invoice=a, items=[(fee_of(a), "100")], credit_amount=Decimal("100"))
    _dated(make_invoice(customer=customer, currency="EUR", fees=[{"amount": "50.00"}]), date(2026, 5, 2))
    return customer


def test_running_balance_per_currency(ledger):
    eur, usd = customer_statement(customer=ledger, tz_name="Europe/Paris")
    assert [(line.kind, line.debit, line.credit, line.balance) for line in usd.lines] == [
        ("invoice", Decimal("1000.00"), 0, Decimal("1000.00")),
        ("payment", 0, Decimal("400.00"), Decimal("600.00")),
        ("invoice", Decimal("250.00"), 0, Decimal("850.00")),
        ("void", 0, Decimal("250.00"), Decimal("600.00")),
        ("credit note", 0, Decimal("100.00"), Decimal("500.00")),
    ]
    assert [line.day for line in usd.lines[:4]] == [
        date(2026, 5, 1),
        date(2026, 5, 10),
        date(2026, 6, 1),
        date(2026, 6, 5),
    ]
    assert (usd.opening, usd.closing, usd.debits, usd.credits) == (
        0,
        Decimal("500.00"),
        Decimal("1250.00"),
        Decimal("750.00"),
    )
    assert (eur.currency, eur.closing) == ("EUR", Decimal("50.00"))

    # From June: May's lines make the opening balance.
    _, usd_june = customer_statement(customer=ledger, tz_name="Europe/Paris", since=date(2026, 6, 1))
    assert usd_june.opening == Decimal("600.00") and len(usd_june.lines) == 3
    assert usd_june.closing == Decimal("500.00")
    # Until May 31st: June and later are left out.
    _, usd_may = customer_statement(customer=ledger, tz_name="Europe/Paris", until=date(2026, 5, 31))
    assert usd_may.closing == Decimal("600.00")


def test_statement_page_and_pdf(client, ledger):
    from tests.console.test_admin_console import _ensure_roles

    _ensure_roles()
    client.force_login(_user("viewer", "Finance Viewer"))
    url = reverse("admin:console-customer-statement", args=[ledger.pk])
    page = client.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert "USD 1,000.00" in body and "USD 500.00" in body and "EUR 50.00" in body
    assert 'id="statement-pdf"' in body
    assert url in client.get(reverse("admin:console-customer", args=[ledger.pk])).content.decode()

    pdf = client.get(url, {"format": "pdf", "since": "2026-06-01"})
    assert pdf["Content-Type"] == "application/pdf"
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages).split())
    assert "Statement of account" in text and "Statement Co" in text
    assert "USD 600.00" in text and "USD 500.00" in text  # opening and closing
    assert "USD 1,000.00" not in text  # May's invoice is in the opening balance only


def test_statement_needs_the_view_permissions(client, ledger):
    from tests.console.test_admin_console import _ensure_roles

    _ensure_roles()
    client.force_login(_user("support", "Support"))  # no payments: no statement
    assert client.get(reverse("admin:console-customer-statement", args=[ledger.pk])).status_code == 403


def test_statement_queries_do_not_grow_with_its_lines(admin_client, ledger):
    url = reverse("admin:console-customer-statement", args=[ledger.pk])
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for n in range(10):
        invoice = _dated(make_invoice(customer=ledger, fees=[{"amount": "10.00"}]), date(2026, 7, 1 + n))
        payment_create_manual(invoice_id=invoice.pk, amount_cents=500, reference=f"part {n}")
    with CaptureQueriesContext(connection) as many:
        admin_client.get(url)
    assert len(many) == len(few)
