"""The five steps in one run, through the public API, with Stripe played by localstripe:
a Stripe customer with a card, a metric and a plan, a subscription started in the past, usage
events, the billing run at the period end, the payment collected off-session, and the PDF
downloaded through its signed link.

Plan "workflow", USD, 20.00 a month in arrears, standard charge on `gb` (sum of `gb`) at 0.75,
tax vat_10 (10%) for the organization; January 2025:
    subscription fee                       20.00
    usage 4 + 6.5 + 2 = 12.5 GB x 0.75 =    9.375 -> 9.38 (half-up)
    fees                                    29.38
    VAT 10% of 29.38 = 2.938             ->  2.94
    total                                   32.32 -> Stripe PaymentIntent of 3232 cents
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe
from django.core.management import call_command
from django.test import Client
from pypdf import PdfReader

from .conftest import LOCALSTRIPE_SECRET_KEY

pytestmark = [pytest.mark.stripe, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _ok(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.content
    return answer.json()


def test_usage_to_money_through_the_api(api, stripe_api, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    _ok(
        api.post(
            "/api/v1/customers",
            {
                "customer": {
                    "external_id": "workflow_co",
                    "name": "Workflow Co",
                    "email": "billing@workflow.example",
                    "currency": "USD",
                    "billing_configuration": {"payment_provider": "stripe", "sync_with_provider": True},
                }
            },
        )
    )
    _ok(
        api.post(
            "/api/v1/customers/workflow_co/payment_methods",
            {"payment_method": {"provider_method_id": "pm_card_visa", "set_as_default": True}},
        )
    )
    _ok(
        api.post(
            "/api/v1/taxes",
            {"tax": {"name": "VAT", "code": "vat_10", "rate": "10.0", "applied_to_organization": True}},
        )
    )
    metric = _ok(
        api.post(
            "/api/v1/billable_metrics",
            {"billable_metric": {"name": "Storage", "code": "gb", "aggregation_type": "sum_agg", "field_name": "gb"}},
        )
    )["billable_metric"]
    _ok(
        api.post(
            "/api/v1/plans",
            {
                "plan": {
                    "name": "Workflow",
                    "code": "workflow",
                    "interval": "monthly",
                    "amount_cents": 2000,
                    "amount_currency": "USD",
                    "pay_in_advance": False,
                    "charges": [
                        {
                            "billable_metric_id": metric["lago_id"],
                            "charge_model": "standard",
                            "properties": {"amount": "0.75"},
                        }
                    ],
                }
            },
        )
    )
    _ok(
        api.post(
            "/api/v1/subscriptions",
            {
                "subscription": {
                    "external_customer_id": "workflow_co",
                    "plan_code": "workflow",
                    "external_id": "workflow_sub",
                    "subscription_at": "2025-01-01T00:00:00Z",
                }
            },
        )
    )
    # As if the call had been made on 2025-01-01 (a period that ended before Tollgate was told of
    # a subscription is never billed, and this story begins in January).
    from plans.models import Subscription

    Subscription.objects.filter(external_id="workflow_sub").update(recorded_at=datetime(2025, 1, 1, tzinfo=UTC))
    usage = [("e1", 4, 3), ("e2", "6.5", 15), ("e3", 2, 31)]  # (transaction, GB, day of January)
    events = [
        {
            "transaction_id": transaction_id,
            "external_subscription_id": "workflow_sub",
            "code": "gb",
            "timestamp": int(datetime(2025, 1, day, 12, tzinfo=UTC).timestamp()),
            "properties": {"gb": gb},
        }
        for transaction_id, gb, day in usage
    ]
    _ok(api.post("/api/v1/events/batch", {"events": events}))
    # A re-sent event (a client retry) is not counted twice.
    _ok(api.post("/api/v1/events", {"event": events[0]}))
    # Outside the period: February's usage is for the next invoice.
    _ok(
        api.post(
            "/api/v1/events",
            {
                "event": {
                    **events[0],
                    "transaction_id": "e4",
                    "timestamp": int(datetime(2025, 2, 1, tzinfo=UTC).timestamp()),
                }
            },
        )
    )

    out = io.StringIO()
    call_command("run_invoices", at="2025-02-01T00:10:00Z", stdout=out)
    call_command("run_invoices", at="2025-02-01T00:10:00Z", stdout=out)  # a rerun bills nothing more

    listed = _ok(api.get("/api/v1/invoices", {"external_customer_id": "workflow_co"}))["invoices"]
    assert len(listed) == 1
    invoice = _ok(api.get(f"/api/v1/invoices/{listed[0]['lago_id']}"))["invoice"]
    assert {
        key: invoice[key]
        for key in (
            "status",
            "fees_amount_cents",
            "taxes_amount_cents",
            "total_amount_cents",
            "total_due_amount_cents",
            "payment_status",
            "currency",
        )
    } == {
        "status": "finalized",
        "fees_amount_cents": 2938,
        "taxes_amount_cents": 294,
        "total_amount_cents": 3232,
        "total_due_amount_cents": 0,
        "payment_status": "succeeded",
        "currency": "USD",
    }
    fees = sorted((fee["item"]["type"], fee["units"], fee["amount_cents"]) for fee in invoice["fees"])
    assert fees == [("charge", "12.5", 938), ("subscription", "1", 2000)]

    # The money: one Stripe PaymentIntent for 3232 cents, succeeded, carrying the invoice id.
    payments = _ok(api.get("/api/v1/payments", {"invoice_id": invoice["lago_id"]}))["payments"]
    assert [(p["amount_cents"], p["payment_status"]) for p in payments] == [(3232, "succeeded")]
    intent = stripe.PaymentIntent.retrieve(payments[0]["provider_payment_id"], api_key=LOCALSTRIPE_SECRET_KEY)
    assert (intent["amount"], intent["currency"], intent["status"]) == (3232, "usd", "succeeded")
    assert intent["metadata"]["invoice_id"] == invoice["lago_id"]

    # The PDF, through a signed link that needs no API key.
    file_url = _ok(api.post(f"/api/v1/invoices/{invoice['lago_id']}/download"))["invoice"]["file_url"]
    download = Client().get(file_url.replace("http://testserver", ""))
    assert (download.status_code, download["Content-Type"]) == (200, "application/pdf")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(b"".join(download.streaming_content))).pages)
    assert invoice["number"] in text
    assert "32.32" in text
