"""Two workers at once: the invoice lock and the unique constraints let only one take the money."""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe

from payments import services
from payments.models import Payment, PaymentTrigger
from tests.concurrency import race
from tests.factories.payments import make_finalized_invoice

from .conftest import LOCALSTRIPE_SECRET_KEY

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_manual_payments_of_the_full_amount(db):
    invoice = make_finalized_invoice(total="100.00")

    results = race(
        lambda: services.payment_create_manual(invoice_id=invoice.pk, amount_cents=10000, reference="SAME-TRANSFER")
    )

    assert sorted(type(result).__name__ for result in results) == ["Payment", "PaymentError"]
    assert [r.code for r in results if isinstance(r, services.PaymentError)] == ["greater_than"]
    invoice.refresh_from_db()
    assert invoice.total_paid_amount == Decimal("100.00")


@pytest.mark.stripe
def test_two_collections_of_the_same_invoice_charge_once(stripe_customer):
    invoice = make_finalized_invoice(customer=stripe_customer(), total="55.00")

    results = race(
        lambda: services.invoice_payment_collect(
            invoice_id=invoice.pk, trigger=PaymentTrigger.FINALIZATION, after_attempt=0
        ),
        count=4,
    )

    assert not [result for result in results if isinstance(result, Exception)]
    assert Payment.objects.filter(invoice=invoice).count() == 1
    charged = [
        pi
        for pi in stripe.PaymentIntent.list(api_key=LOCALSTRIPE_SECRET_KEY, limit=100).auto_paging_iter()
        if pi.to_dict()["metadata"].get("invoice_id") == str(invoice.pk)
    ]
    assert len(charged) == 1
    invoice.refresh_from_db()
    assert invoice.payment_status == "succeeded"
