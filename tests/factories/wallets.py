"""Test data builders for wallets: through the services, as the API and the admin make them."""

from __future__ import annotations

from typing import Any

from customers.models import Customer
from invoicing.wallets import services
from invoicing.wallets.models import Wallet
from tests.factories.customers import make_customer


def make_wallet(*, customer: Customer | None = None, rate_amount: str = "1", **fields: Any) -> Wallet:
    customer = customer or Customer.live.filter(external_id="cust_1").first() or make_customer(currency="USD")
    fields.setdefault("currency", customer.currency or "USD")
    return services.wallet_create(customer=customer, rate_amount=rate_amount, actor="test", **fields)
