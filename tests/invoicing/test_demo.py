"""The invoicing demo step, after the customers, metrics and plans steps: both demo
subscriptions billed for their two ended months through the billing run, finalized with PDFs
(no grace period in the demo), and nothing new on a second load."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from invoicing import demo
from invoicing.models import Invoice, InvoiceStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def test_demo_bills_the_two_ended_months_once(django_capture_on_commit_callbacks):
    for step in ("customers", "metrics", "plans"):
        __import__(f"{step}.demo", fromlist=["load"]).load(stdout=io.StringIO())
    first, again = io.StringIO(), io.StringIO()

    with django_capture_on_commit_callbacks(execute=True):
        demo.load(stdout=first)
    demo.load(stdout=again)

    invoices = Invoice.objects.filter(invoice_subscriptions__subscription__external_id__in=demo.DEMO_SUBSCRIPTIONS)
    assert "4 invoice(s) billed" in first.getvalue(), first.getvalue()
    assert "0 invoice(s) billed, 4 period(s) already billed, 0 failed; 4 demo invoice(s) with a PDF" in again.getvalue()
    assert invoices.count() == 4
    assert set(invoices.values_list("status", flat=True)) == {InvoiceStatus.FINALIZED}
    assert all(invoice.file for invoice in invoices)
    assert {invoice.currency for invoice in invoices} == {"USD", "JPY"}
    # Usage was billed: the metrics demo's events for last month are on the invoices.
    assert all(invoice.fees_amount > 0 for invoice in invoices)


def test_load_demo_command_runs_every_step_twice(capsys):
    call_command("load_demo")
    call_command("load_demo")

    out = capsys.readouterr().out
    assert "invoicing: 0 invoice(s) billed, 4 period(s) already billed" in out
    assert Invoice.objects.filter(status=InvoiceStatus.FINALIZED).exclude(file="").count() == 4
