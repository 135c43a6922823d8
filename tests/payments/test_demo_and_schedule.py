"""The demo step and the periodic tasks payments declares."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from invoicing.models import PaymentStatus as InvoicePaymentStatus
from payments import demo
from payments.models import Payment, PaymentStatus
from tests.factories.customers import make_customer
from tests.factories.payments import make_finalized_invoice

pytestmark = pytest.mark.django_db


def test_demo_pays_one_invoice_in_full_one_in_part_declines_a_card_and_is_idempotent():
    out = io.StringIO()
    demo.load(stdout=out)
    assert "no finalized invoice" in out.getvalue()

    acme = make_customer(external_id="acme")
    tanaka = make_customer(external_id="tanaka", currency="JPY")
    today = timezone.localdate()
    oldest = make_finalized_invoice(customer=acme, total="99.99", issuing_date=today - timedelta(days=40))
    newer = make_finalized_invoice(customer=acme, total="99.99", issuing_date=today - timedelta(days=10))
    overdue = make_finalized_invoice(
        customer=tanaka,
        currency="JPY",
        total="6000",
        issuing_date=today - timedelta(days=30),
        payment_due_date=today - timedelta(days=16),
    )
    demo.load(stdout=out)
    demo.load(stdout=out)

    for invoice in (oldest, newer, overdue):
        invoice.refresh_from_db()
    assert oldest.total_due_amount == Decimal(0) and oldest.payment_status == InvoicePaymentStatus.SUCCEEDED
    # Half of 99.99, in whole cents: 49.99 paid, 50.00 still due.
    assert newer.total_due_amount == Decimal("50.00") and newer.payment_status == InvoicePaymentStatus.PENDING
    declined = overdue.payments.get()
    assert (declined.status, declined.failure_code) == (PaymentStatus.FAILED, "card_declined")
    assert overdue.payment_status == InvoicePaymentStatus.FAILED and overdue.payment_overdue
    assert Payment.objects.count() == 3
    assert "already recorded" in out.getvalue()


def test_periodic_tasks_are_installed():
    call_command("setup_periodic_tasks", stdout=io.StringIO())

    tasks = {task.name: task for task in PeriodicTask.objects.filter(name__startswith="payments:")}
    retry = tasks["payments: retry failed payments"]
    overdue = tasks["payments: flag overdue invoices"]
    assert (retry.task, retry.crontab.minute, retry.crontab.hour) == ("payments.tasks.retry_failed_payments", "15", "*")
    assert (overdue.task, overdue.crontab.minute, overdue.crontab.hour) == (
        "payments.tasks.flag_overdue_invoices",
        "30",
        "0",
    )


def test_webhook_endpoint_command(settings):
    out = io.StringIO()
    call_command(
        "stripe_webhook_endpoint", "--base-url", "https://billing.example.com", "--secret", "whsec_x", stdout=out
    )
    assert out.getvalue().startswith("https://billing.example.com/stripe/webhook/")
