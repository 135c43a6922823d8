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
