"""A finalized invoice whose collection task was lost (broker down, worker killed) is collected
by the hourly sweep, once, however often the sweep and a late task run (localstripe)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from payments import services, tasks
from payments.models import PaymentStatus, PaymentTrigger
from tests.factories.payments import make_finalized_invoice

pytestmark = pytest.mark.stripe


def test_a_lost_collect_task_is_collected_by_the_sweep_once(stripe_customer):
    invoice = make_finalized_invoice(customer=stripe_customer(), finalized_at=timezone.now() - timedelta(hours=1))
    # invoice_finalized's task never ran: no attempt.

    assert tasks.retry_failed_payments()["missed_collected"] == 1
    assert tasks.retry_failed_payments()["missed_collected"] == 0
    # The lost task arriving late finds attempt 1 already made: a no-op.
    late = services.invoice_payment_collect(invoice_id=invoice.pk, trigger=PaymentTrigger.FINALIZATION, after_attempt=0)
    assert late is None

    payment = invoice.payments.get()
    assert (payment.status, payment.attempt) == (PaymentStatus.SUCCEEDED, 1)
    assert payment.trigger == PaymentTrigger.FINALIZATION
