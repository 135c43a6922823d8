"""The invoicing demo step, after the customers, metrics and plans steps: every ended period of
the demo subscriptions billed through the billing run (finalized with PDFs, globex's in its grace
period as a draft), a one-off invoice and a credit note, and nothing new on a second load; and
the whole `load_demo` command, whose closing block is printed last."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from customers.models import Customer
from invoicing import demo
from invoicing.models import CreditNote, Invoice, InvoiceStatus, InvoiceType
from invoicing.models import PaymentStatus as InvoicePaymentStatus
from plans.models import Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def test_demo_bills_every_ended_period_once(django_capture_on_commit_callbacks):
    for step in ("customers", "metrics", "plans"):
        __import__(f"{step}.demo", fromlist=["load"]).load(stdout=io.StringIO())
    first, again = io.StringIO(), io.StringIO()

    with django_capture_on_commit_callbacks(execute=True):
        demo.load(stdout=first)
    demo.load(stdout=again)

    periods = Invoice.objects.filter(invoice_subscriptions__subscription__external_id__in=demo.DEMO_SUBSCRIPTIONS)
    # acme and tanaka: two ended months each; globex: its one ended week.
    assert "5 invoice(s) billed" in first.getvalue(), first.getvalue()
    assert "0 invoice(s) billed, 5 period(s) already billed, 0 failed" in again.getvalue()
    assert periods.count() == 5
    finalized = periods.filter(status=InvoiceStatus.FINALIZED)
    assert {invoice.currency for invoice in finalized} == {"USD", "JPY"}
    assert all(invoice.file for invoice in finalized)
    # globex has a week of grace: its invoice waits as a draft, with the welcome coupon on it.
    draft = periods.get(status=InvoiceStatus.DRAFT)
    assert (draft.customer.external_id, draft.currency) == ("globex", "EUR")
    assert draft.coupons_amount == Decimal("5.00")
    # Usage was billed: the metrics demo's events for last month are on the invoices.
    assert all(invoice.fees_amount > 0 for invoice in periods)
    one_off = Invoice.objects.get(invoice_type=InvoiceType.ONE_OFF)
    assert (one_off.customer.external_id, one_off.status, one_off.fees_amount) == (
        "acme",
        InvoiceStatus.FINALIZED,
        Decimal("500.00"),
    )
    note = CreditNote.objects.get()
    assert (note.invoice.customer.external_id, note.credit_amount) == ("tanaka", Decimal(1000) * Decimal("1.2"))
    assert Invoice.objects.count() == 6 and CreditNote.objects.count() == 1


def test_load_demo_command_shows_the_whole_month_end_and_runs_twice(capsys):
    call_command("load_demo", "--port", "8001")
    first = capsys.readouterr().out
    call_command("load_demo", "--port", "8001")
    again = capsys.readouterr().out

    assert "invoicing: 0 invoice(s) billed, 5 period(s) already billed" in again
    # The closing block is the last thing printed: URLs on the asked port, credentials once.
    closing = first[first.index("Tollgate demo is ready") :]
    assert "http://127.0.0.1:8001/admin/" in closing and "http://127.0.0.1:8001/api/v1/docs/" in closing
    assert "password " in closing and "curl -H" in closing
    assert "invoicing:" not in closing and "payments:" not in closing
    assert "shown on the first run only" in again[again.index("Tollgate demo is ready") :]

    invoices = Invoice.objects.all()
    assert invoices.filter(status=InvoiceStatus.FINALIZED).exclude(file="").count() == 5
    assert invoices.filter(status=InvoiceStatus.DRAFT).count() == 1
    assert invoices.filter(payment_status=InvoicePaymentStatus.SUCCEEDED, invoice_type="subscription").count() == 1
    partly = invoices.filter(total_paid_amount__gt=0, payment_status=InvoicePaymentStatus.PENDING)
    assert partly.count() == 1
    assert invoices.filter(payment_overdue=True).count() >= 1
    assert invoices.filter(payment_status=InvoicePaymentStatus.FAILED).count() == 1
    assert {c.currency for c in Customer.objects.all()} == {"USD", "JPY", "EUR"}
    assert Subscription.objects.filter(status="active").count() == 3
