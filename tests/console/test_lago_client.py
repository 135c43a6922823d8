"""lago-python-client 1.55.0, unchanged, reading Tollgate's analytics over HTTP."""

from __future__ import annotations

from datetime import date

import pytest
from django.utils import timezone
from lago_python_client.client import Client

from tests.console.factories import plan, subscription, subscription_fee
from tests.factories.customers import make_api_key

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_analytics_through_the_lago_client(live_server):
    today = timezone.localdate()
    subscription_fee(subscription("acme", plan("monthly", "monthly", 10000)), "100", issued=today.replace(day=1))
    lago = Client(api_key=make_api_key().raw, api_url=live_server.url)
    month = f"{today:%Y-%m}-01T00:00:00.000Z"

    [revenue] = lago.gross_revenues.find_all({"currency": "USD", "months": 1})["gross_revenues"]
    assert (revenue.month, revenue.amount_cents, revenue.currency, revenue.invoices_count) == (month, 10000, "USD", 1)
    [mrr] = lago.mrrs.find_all({"months": 1})["mrrs"]
    assert (mrr.month, mrr.amount_cents) == (month, 10000)
    [collection] = lago.invoice_collections.find_all({"months": 1})["invoice_collections"]
    assert (collection.payment_status, collection.invoices_count) == ("pending", 1)
    assert lago.invoiced_usages.find_all({"external_customer_id": "acme"})["invoiced_usages"] == []
    assert lago.overdue_balances.find_all()["overdue_balances"] == []
    assert date.fromisoformat(month[:10]) <= today
