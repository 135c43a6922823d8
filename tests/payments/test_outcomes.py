"""Applying provider outcomes to the ledger, without Stripe: idempotent, monotonic, and truthful
when money arrives twice."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from payments import services
from payments.models import PaymentStatus
from payments.providers import ChargeOutcome
from tests.factories.customers import make_customer
from tests.factories.payments import make_finalized_invoice, make_stripe_payment

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice():
    return make_finalized_invoice(customer=make_customer(external_id="o", payment_provider="stripe"), total="20.00")


def test_same_outcome_twice_writes_once(invoice, django_assert_num_queries):
    payment = make_stripe_payment(invoice=invoice, status=PaymentStatus.PENDING)
    success = ChargeOutcome(PaymentStatus.SUCCEEDED, "pi_once")

    services.payment_apply_outcome(payment_id=payment.pk, outcome=success)
    # Second time: savepoint, read the invoice id, lock the invoice, lock the payment, release:
    # no UPDATE of either row.
    with django_assert_num_queries(5):
        services.payment_apply_outcome(payment_id=payment.pk, outcome=success)

    invoice.refresh_from_db()
    assert invoice.total_paid_amount == Decimal("20.00")
    assert invoice.payment_status == "succeeded"


def test_late_success_of_an_abandoned_attempt_is_recorded_and_flagged(invoice, caplog):
    abandoned = make_stripe_payment(
        invoice=invoice,
        attempt=1,
        status=PaymentStatus.FAILED,
        failure_code="not_confirmed",
        provider_payment_id="pi_1",
    )
    make_stripe_payment(invoice=invoice, attempt=2, status=PaymentStatus.SUCCEEDED, provider_payment_id="pi_2")

    with caplog.at_level(logging.WARNING, logger="payments.services"):
        services.payment_apply_outcome(payment_id=abandoned.pk, outcome=ChargeOutcome(PaymentStatus.SUCCEEDED, "pi_1"))

    invoice.refresh_from_db()
    assert invoice.total_paid_amount == Decimal("40.00")
    assert invoice.total_due_amount == Decimal(0)
    assert invoice.payment_status == "succeeded"
    assert f"invoice {invoice.pk} collected 40.00 for a total of 20.00 USD" in caplog.text


def test_failure_then_requires_action_is_ignored(invoice):
    payment = make_stripe_payment(invoice=invoice, status=PaymentStatus.FAILED, failure_code="card_declined")

    services.payment_apply_outcome(
        payment_id=payment.pk, outcome=ChargeOutcome(PaymentStatus.REQUIRES_ACTION, next_action={"type": "x"})
    )

    payment.refresh_from_db()
    assert (payment.status, payment.failure_code, payment.next_action) == (PaymentStatus.FAILED, "card_declined", None)


def test_intent_matching(invoice):
    recorded = make_stripe_payment(invoice=invoice, attempt=1, status=PaymentStatus.PENDING)
    by_metadata = {"id": "pi_new", "status": "succeeded", "metadata": {"payment_id": str(recorded.pk)}}
    by_invoice = {"id": "pi_new", "status": "succeeded", "metadata": {"invoice_id": str(invoice.pk), "attempt": "1"}}
    garbage = {"id": "pi_x", "status": "succeeded", "metadata": {"payment_id": "not-a-uuid"}}

    assert services._payment_for_intent(by_metadata) == recorded
    assert services._payment_for_intent(by_invoice) == recorded
    assert services._payment_for_intent(garbage) is None
    type(recorded).objects.filter(pk=recorded.pk).update(provider_payment_id="pi_other")
    # The metadata names an attempt that went through another intent: not ours to apply.
    assert services._payment_for_intent(by_metadata) is None
    assert services.payment_intent_event_apply(payment_intent=by_metadata) is None
