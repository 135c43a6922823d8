"""The overdue flag: set by the daily task on finalized invoices past due with something to pay,
cleared when paid (at once by the payment service, and by the task for anything else)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from invoicing.models import InvoiceStatus
from payments import services, tasks
from tests.factories.payments import make_finalized_invoice

pytestmark = pytest.mark.django_db

TODAY = date(2025, 3, 10)


def test_flag_on_and_off():
    past_due = make_finalized_invoice(total="100.00", payment_due_date=TODAY - timedelta(days=1))
    due_today = make_finalized_invoice(total="100.00", payment_due_date=TODAY)
    paid = make_finalized_invoice(total="100.00", payment_due_date=TODAY - timedelta(days=5))
    services.payment_create_manual(invoice_id=paid.pk, amount_cents=10000, reference="PAID")
    draft = make_finalized_invoice(total="100.00", payment_due_date=TODAY - timedelta(days=5), status="draft")
    zero = make_finalized_invoice(total="0", payment_due_date=TODAY - timedelta(days=5))

    assert services.invoices_overdue_refresh(today=TODAY) == (1, 0)

    flags = {inv.pk: inv.payment_overdue for inv in [past_due, due_today, paid, draft, zero]}
    for invoice in [past_due, due_today, paid, draft, zero]:
        invoice.refresh_from_db()
        flags[invoice.pk] = invoice.payment_overdue
    assert flags == {past_due.pk: True, due_today.pk: False, paid.pk: False, draft.pk: False, zero.pk: False}

    # The next day the invoice due today is overdue too; running twice changes nothing more.
    assert services.invoices_overdue_refresh(today=TODAY + timedelta(days=1)) == (1, 0)
    assert services.invoices_overdue_refresh(today=TODAY + timedelta(days=1)) == (0, 0)


def test_partial_payment_keeps_the_flag_full_payment_clears_it_at_once():
    invoice = make_finalized_invoice(total="100.00", payment_due_date=TODAY - timedelta(days=3))
    services.invoices_overdue_refresh(today=TODAY)

    services.payment_create_manual(invoice_id=invoice.pk, amount_cents=5000, reference="HALF")
    invoice.refresh_from_db()
    assert invoice.payment_overdue is True

    services.payment_create_manual(invoice_id=invoice.pk, amount_cents=5000, reference="REST")
    invoice.refresh_from_db()
    assert invoice.payment_overdue is False
    assert invoice.payment_status == "succeeded"


def test_task_clears_the_flag_of_an_invoice_no_longer_due():
    invoice = make_finalized_invoice(total="100.00", payment_due_date=TODAY - timedelta(days=3))
    services.invoices_overdue_refresh(today=TODAY)
    # Voided by invoicing: nothing is due any more.
    type(invoice).objects.filter(pk=invoice.pk).update(status=InvoiceStatus.VOIDED)

    assert services.invoices_overdue_refresh(today=TODAY) == (0, 1)
    invoice.refresh_from_db()
    assert invoice.payment_overdue is False


def test_daily_task_uses_today():
    invoice = make_finalized_invoice(total="1.00", payment_due_date=date(2000, 1, 1))

    assert tasks.flag_overdue_invoices.delay().get() == {"flagged": 1, "cleared": 0}

    invoice.refresh_from_db()
    assert invoice.payment_overdue is True
