"""The database refuses what would break the ledger: a second attempt in flight, a reused attempt
number or PaymentIntent, a manual payment without the succeeded state, a non-positive amount."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from payments.models import Payment, PaymentProviderName, PaymentStatus, PaymentTrigger
from tests.factories.payments import make_finalized_invoice, make_stripe_payment

pytestmark = pytest.mark.django_db


def refused(**fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.create(**fields)


def test_constraints():
    invoice = make_finalized_invoice(total="10.00")
    make_stripe_payment(invoice=invoice, attempt=1, status=PaymentStatus.FAILED, provider_payment_id="pi_1")
    make_stripe_payment(invoice=invoice, attempt=2, status=PaymentStatus.PENDING)
    base = {
        "invoice": invoice,
        "customer": invoice.customer,
        "currency": "USD",
        "amount": Decimal("10"),
        "trigger": PaymentTrigger.API,
    }

    # A second attempt in flight on the same invoice.
    refused(**base, provider=PaymentProviderName.STRIPE, attempt=3, status=PaymentStatus.REQUIRES_ACTION)
    # The same attempt number twice.
    refused(**base, provider=PaymentProviderName.STRIPE, attempt=1, status=PaymentStatus.FAILED)
    # The same PaymentIntent behind two attempts.
    refused(
        **base, provider=PaymentProviderName.STRIPE, attempt=4, status=PaymentStatus.FAILED, provider_payment_id="pi_1"
    )
    # A Stripe attempt without a number; a manual payment that is not succeeded.
    refused(**base, provider=PaymentProviderName.STRIPE, status=PaymentStatus.FAILED)
    refused(**base, provider=PaymentProviderName.MANUAL, status=PaymentStatus.PENDING, reference="R")
    # Succeeded without paid_at; zero amount.
    refused(
        **{**base, "amount": Decimal(0)},
        provider=PaymentProviderName.MANUAL,
        status="succeeded",
        paid_at=timezone.now(),
    )
    refused(**base, provider=PaymentProviderName.MANUAL, status=PaymentStatus.SUCCEEDED, reference="R")


def test_transitions_never_go_back():
    payment = Payment(status=PaymentStatus.SUCCEEDED)
    assert not any(payment.can_move_to(status) for status in PaymentStatus.values)
    payment.status = PaymentStatus.FAILED
    assert [s for s in PaymentStatus.values if payment.can_move_to(s)] == [PaymentStatus.SUCCEEDED]
    payment.status = PaymentStatus.REQUIRES_ACTION
    assert not payment.can_move_to(PaymentStatus.PENDING)
