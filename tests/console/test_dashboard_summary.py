"""The dashboard's Outstanding, Overdue, Invoiced and Collected figures and the aging totals,
read from the summary rows (invoicing.summaries.invoices, payments.analytics), equal the same
selectors reading the raw invoices and payments, after a void, a partial and a full payment, a
credit note and an invoice becoming overdue; and the aging page shows one page of customers
with the totals of all of them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from customers.models import Organization
from invoicing import analytics
from invoicing.models import Invoice, InvoiceDayRow, InvoiceDirtyDay, InvoiceStatus
from invoicing.services import invoice_void
from invoicing.summaries import invoices as invoice_summary
from payments import admin_views
from payments import analytics as collected
from payments.models import PaymentDayRow, PaymentDirtyDay, PaymentReceipt
from payments.services import payment_create_manual
from tests.factories.credit_notes import make_credit_note, make_invoice
from tests.factories.customers import make_customer
from tests.factories.payments import make_finalized_invoice

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

TODAY = date(2026, 6, 15)
FIRST, END = date(2025, 7, 1), date(2026, 7, 1)


def _figures(tz_name: str = "UTC") -> tuple[Any, ...]:
    return (
        analytics.outstanding_by_currency(),
        analytics.overdue_by_currency(),
        analytics.invoiced_by_month(first=FIRST, end=END),
        analytics.invoiced_by_currency(first=date(2026, 6, 1), end=END),
        collected.collected_by_month(first=FIRST, end=END, tz_name=tz_name),
        analytics.aging_totals(today=TODAY),
    )


def _raw(monkeypatch: pytest.MonkeyPatch, tz_name: str = "UTC") -> tuple[Any, ...]:
    """The same selectors, reading the invoices and payments (the summaries' reference)."""
    with monkeypatch.context() as patched:
        patched.setattr(invoice_summary, "summary_rows", lambda: None)
        patched.setattr(collected, "use_summary", lambda: False)
        return _figures(tz_name)


def _pay(invoice: Invoice, amount: str, paid_at: datetime) -> None:
    payment_create_manual(
        invoice_id=invoice.pk, amount_cents=int(Decimal(amount) * 100), reference="WIRE-1", paid_at=paid_at
    )


def test_summary_rows_follow_void_payments_credit_notes_and_overdue(monkeypatch, django_capture_on_commit_callbacks):
    acme, bolt = make_customer(external_id="acme"), make_customer(external_id="bolt")
    # Issued June 1, due July 1 (current); issued April 1, due May 1 (45 days past due on June 15).
    june = make_finalized_invoice(customer=acme, total="1000.00", issuing_date=date(2026, 6, 1))
    april = make_finalized_invoice(customer=acme, total="300.00", issuing_date=date(2026, 4, 1))
    voided = make_finalized_invoice(customer=bolt, total="250.00", issuing_date=date(2026, 6, 2))
    make_finalized_invoice(customer=bolt, currency="EUR", total="80.00", issuing_date=date(2026, 6, 3))
    make_finalized_invoice(customer=bolt, total="999.00", issuing_date=date(2026, 6, 4), status=InvoiceStatus.DRAFT)

    figures = _figures()
    assert figures == _raw(monkeypatch)
    outstanding, overdue, invoiced, invoiced_june, paid, aging = figures
    assert outstanding == {"EUR": Decimal("80"), "USD": Decimal("1550")}
    assert overdue == {}  # the daily sweep has flagged nothing yet
    assert invoiced[(date(2026, 6, 1), "USD")] == Decimal("1250")  # the draft never counts
    assert invoiced[(date(2026, 4, 1), "USD")] == Decimal("300")
    assert invoiced_june == {"EUR": Decimal("80"), "USD": Decimal("1250")}
    assert paid == {}
    assert aging["USD"]["current"] == Decimal("1250") and aging["USD"]["31-60"] == Decimal("300")
    assert not InvoiceDirtyDay.objects.exists() and InvoiceDayRow.objects.count() == 4

    # A void, a partial payment of June's invoice, April's paid in full and flagged overdue first.
    invoice_void(invoice=voided, actor="test")
    Invoice.objects.filter(pk=april.pk).update(payment_overdue=True)
    assert _figures()[1] == {"USD": Decimal("300")} == _raw(monkeypatch)[1]
    with django_capture_on_commit_callbacks(execute=False):
        _pay(june, "234.50", datetime(2026, 6, 10, 9, tzinfo=UTC))
        _pay(april, "300.00", datetime(2026, 5, 31, 23, 30, tzinfo=UTC))
    figures = _figures()
    assert figures == _raw(monkeypatch)
    outstanding, overdue, invoiced, _, paid, aging = figures
    assert outstanding == {"EUR": Decimal("80"), "USD": Decimal("765.50")}  # 1,000 - 234.50
    assert overdue == {}  # April's is paid
    assert invoiced[(date(2026, 6, 1), "USD")] == Decimal("1000")  # the voided 250 left
    assert paid == {(date(2026, 5, 1), "USD"): Decimal("300"), (date(2026, 6, 1), "USD"): Decimal("234.5")}
    assert aging["USD"] == {
        "current": Decimal("765.5"),
        "1-30": Decimal(0),
        "31-60": Decimal(0),
        "61-90": Decimal(0),
        "90+": Decimal(0),
        "total": Decimal("765.5"),
    }

    # In Paris, April's payment (May 31, 23:30 UTC) was made on June 1: the rows are rebuilt
    # for the organization's zone and still equal the raw figures.
    paris = _figures("Europe/Paris")[4]
    assert paris == {(date(2026, 6, 1), "USD"): Decimal("534.5")} == _raw(monkeypatch, "Europe/Paris")[4]
    assert set(PaymentDayRow.objects.values_list("time_zone", flat=True)) == {"Europe/Paris"}
    assert not PaymentDirtyDay.objects.exists()

    # A credit note on a paid invoice with a refund, and one on an unpaid invoice.
    with django_capture_on_commit_callbacks(execute=False):
        paid_invoice = make_invoice(customer=acme, fees=[{"amount": "50.00"}], paid="50.00")
        make_credit_note(invoice=paid_invoice, refund_amount=Decimal("20.00"), credit_amount=Decimal("30.00"))
        unpaid = make_invoice(customer=bolt, fees=[{"amount": "40.00"}])
        make_credit_note(invoice=unpaid)
    assert _figures() == _raw(monkeypatch)
    # A payment deleted (a correction by hand): its day is recomputed too.
    PaymentReceipt.objects.filter(payment__invoice=june).delete()
    june.payments.all().delete()
    Invoice.objects.filter(pk=june.pk).update(total_paid_amount=0)
    assert _figures() == _raw(monkeypatch)
    assert _figures()[4] == {(date(2026, 5, 1), "USD"): Decimal("300")}


def test_a_save_that_changes_nothing_the_rows_read_marks_nothing():
    invoice = make_finalized_invoice(total="10.00", issuing_date=date(2026, 6, 1))
    invoice_summary.summary_refresh()
    Invoice.objects.filter(pk=invoice.pk).update(metadata=[{"key": "po", "value": "42"}])
    invoice.save()
    assert not InvoiceDirtyDay.objects.exists()


def test_aging_page_pages_customers_and_totals_every_one(monkeypatch):
    monkeypatch.setattr(admin_views, "AGING_PAGE_SIZE", 2)
    Organization.current()
    today = timezone.localdate()
    for index, total in enumerate(["10.00", "20.00", "30.00"]):
        make_finalized_invoice(
            customer=make_customer(external_id=f"c{index}", name=f"Customer {index}"),
            total=total,
            issuing_date=today - timedelta(days=40),
            payment_due_date=today - timedelta(days=10),
        )
    user = get_user_model().objects.create_superuser("finance", "f@example.com", "pw")
    client = Client()
    client.force_login(user)
    first = client.get("/admin/console/aging/").content.decode()
    second = client.get("/admin/console/aging/?page=2").content.decode()
    assert "(c0)" in first and "(c1)" in first and "(c2)" not in first
    assert "(c2)" in second and "(c0)" not in second
    assert "3 customers owe something; page 1 of 2" in first
    # The totals row is every customer's, on every page: 10 + 20 + 30, all 1-30 days past due.
    for page in (first, second):
        assert "<th>Total, all customers</th><th>USD</th><th>USD 0.00</th><th>USD 60.00</th>" in page
