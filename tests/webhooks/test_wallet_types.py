"""Wallet webhooks, emitted by the wallet API's real flows: a wallet created with granted credits,
a top-up, an update and a termination, each announced with the wallet API's own serialization."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories.customers import make_customer
from tests.webhooks.conftest import register

pytestmark = pytest.mark.django_db


def _ok(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.content
    return answer.json()


def test_wallet_lifecycle_is_announced(api, receiver, django_capture_on_commit_callbacks):
    make_customer(external_id="cust_wallet", currency="USD")
    register(api, receiver.url)

    with django_capture_on_commit_callbacks(execute=True):
        wallet = _ok(
            api.post(
                "/api/v1/wallets",
                {
                    "wallet": {
                        "external_customer_id": "cust_wallet",
                        "name": "Prepaid",
                        "rate_amount": "1",
                        "currency": "USD",
                        "granted_credits": "10",
                    }
                },
            )
        )["wallet"]
    assert receiver.types()[0] == "wallet.created"
    created = receiver.of_type("wallet.created")[0].json
    assert created["object_type"] == "wallet" and created["wallet"]["lago_id"] == wallet["lago_id"]
    granted = receiver.of_type("wallet_transaction.created")
    assert [r.json["wallet_transaction"]["credit_amount"] for r in granted] == ["10"]

    with django_capture_on_commit_callbacks(execute=True):
        _ok(api.put(f"/api/v1/wallets/{wallet['lago_id']}", {"wallet": {"name": "Prepaid credits"}}))
    assert receiver.of_type("wallet.updated")[-1].json["wallet"]["name"] == "Prepaid credits"

    with django_capture_on_commit_callbacks(execute=True):
        _ok(api.delete(f"/api/v1/wallets/{wallet['lago_id']}"))
    terminated = receiver.of_type("wallet.terminated")
    assert len(terminated) == 1 and terminated[0].json["wallet"]["status"] == "terminated"


def test_a_credit_invoice_is_announced_as_paid_credit_added(api, receiver, django_capture_on_commit_callbacks):
    # Lago: invoice.paid_credit_added when a credit invoice is finalized, at once or once an open
    # one is paid (app/services/invoices/paid_credit_service.rb, finalize_open_credit_service.rb).
    make_customer(external_id="cust_credit_hook", currency="USD")
    register(api, receiver.url)
    body = {"external_customer_id": "cust_credit_hook", "rate_amount": "1", "currency": "USD"}

    with django_capture_on_commit_callbacks(execute=True):
        first = _ok(api.post("/api/v1/wallets", {"wallet": {**body, "code": "now", "paid_credits": "12"}}))
    added = receiver.of_type("invoice.paid_credit_added")
    assert len(added) == 1 and "invoice.created" not in receiver.types()
    invoice = added[0].json["invoice"]
    assert (invoice["invoice_type"], invoice["status"], invoice["total_amount_cents"]) == ("credit", "finalized", 1200)

    with django_capture_on_commit_callbacks(execute=True):
        _ok(
            api.post(
                "/api/v1/wallets",
                {"wallet": {**body, "code": "later", "paid_credits": "5", "invoice_requires_successful_payment": True}},
            )
        )
    assert len(receiver.of_type("invoice.paid_credit_added")) == 1  # open: not announced yet
    from invoicing.models import Invoice

    open_invoice = Invoice.objects.get(status="open")
    with django_capture_on_commit_callbacks(execute=True):
        _ok(api.put(f"/api/v1/invoices/{open_invoice.pk}", {"invoice": {"payment_status": "succeeded"}}))
    added = receiver.of_type("invoice.paid_credit_added")
    assert len(added) == 2 and added[1].json["invoice"]["lago_id"] == str(open_invoice.pk)
    assert added[1].json["invoice"]["status"] == "finalized"
    assert first["wallet"]["lago_id"]
