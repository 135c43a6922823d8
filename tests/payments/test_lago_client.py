"""lago-python-client, unchanged, against a live Tollgate: payments and an invoice's retry."""

from __future__ import annotations

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.payment import Payment as LagoPayment

from tests.factories.customers import make_api_key, make_customer
from tests.factories.payments import make_finalized_invoice

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lago(live_server) -> Client:
    return Client(api_key=make_api_key().raw, api_url=live_server.url)


def test_payments_through_the_lago_client(lago):
    invoice = make_finalized_invoice(customer=make_customer(external_id="lago-cus", payment_provider="manual"))

    created = lago.payments.create(
        LagoPayment(invoice_id=str(invoice.pk), amount_cents=2500, reference="LAGO-1", paid_at="2025-04-01")
    )
    found = lago.payments.find(created.lago_id)
    listed = lago.payments.find_all({"invoice_id": str(invoice.pk)})
    # (lago.customer_payments.find_all is not used: client 1.55.0 sends it without the API key.)

    assert (created.amount_cents, created.amount_currency, created.payment_status) == (2500, "USD", "succeeded")
    assert found.reference == "LAGO-1"
    assert [p.lago_id for p in listed["payments"]] == [created.lago_id]
    assert listed["meta"]["total_count"] == 1
    with pytest.raises(LagoApiError) as too_much:
        lago.payments.create(
            LagoPayment(invoice_id=str(invoice.pk), amount_cents=10_000, reference="LAGO-2", paid_at=None)
        )
    assert too_much.value.status_code == 422
    # A manual customer's invoice has no provider to retry with: as Lago, an empty 200 (and an
    # invoice.payment_failure webhook, tests/portal/test_invoice_actions.py).
    assert lago.invoices.retry_payment(str(invoice.pk)) is None
