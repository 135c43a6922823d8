"""The demo step and the periodic tasks payments declares."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from payments import demo
from payments.models import Payment
from tests.factories.payments import make_finalized_invoice

pytestmark = pytest.mark.django_db


def test_demo_records_one_partial_payment_and_is_idempotent():
    out = io.StringIO()
    demo.load(stdout=out)
    assert "no finalized invoice" in out.getvalue()

    invoice = make_finalized_invoice(total="99.99")
    demo.load(stdout=out)
    demo.load(stdout=out)

    payment = Payment.objects.get()
    assert payment.reference == demo.DEMO_REFERENCE
    assert payment.amount == Decimal("49.99")
    invoice.refresh_from_db()
    assert invoice.total_due_amount == Decimal("50.00")
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
