"""The analytics selectors and Lago's /api/v1/analytics/* endpoints, with MRR's worked example."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from invoicing import analytics
from invoicing.models import CreditNote, InvoiceStatus
from tests.console.factories import plan, subscription, subscription_fee
from tests.factories.invoicing import utc

pytestmark = pytest.mark.django_db

TODAY = date(2026, 6, 15)


@pytest.fixture
def worked_example(db):
    """Four customers in USD, one in EUR, one voided invoice that never counts.

    - monthly (100/month, a 10 coupon and 18 tax: 108 recurring), fees issued May 1 and June 1;
    - yearly in arrears (1,200 for 2025-06-01..2026-06-01, issued June 1): 100 in each of the
      12 months back from June;
    - quarterly in advance (300 for 2026-04-01..2026-07-01, issued April 1): 100 in April, May, June;
    - changed plan mid-month: on "startup" (100/month) with its May fee issued June 1, then
      upgraded on June 16: the old plan's terminating fee for June 1-16 (50) is issued June 16
      (the new plan bills in arrears, from July 1).
    """
    monthly = plan("monthly", "monthly", 10000)
    yearly = plan("yearly", "yearly", 120000)
    quarterly = plan("quarterly", "quarterly", 30000, pay_in_advance=True)
    startup = plan("startup", "monthly", 10000)
    scale = plan("scale", "monthly", 20000)
    euro = plan("euro", "monthly", 5000, amount_currency="EUR")

    sub = subscription("m", monthly)
    subscription_fee(sub, "100", issued=date(2026, 5, 1), coupons="10", taxes="18")
    subscription_fee(sub, "100", issued=date(2026, 6, 1), coupons="10", taxes="18")
    subscription_fee(
        subscription("y", yearly), "1200", issued=date(2026, 6, 1), period=(utc(2025, 6, 1), utc(2026, 6, 1))
    )
    subscription_fee(
        subscription("q", quarterly), "300", issued=date(2026, 4, 1), period=(utc(2026, 4, 1), utc(2026, 7, 1))
    )
    old = subscription("c", startup)
    subscription_fee(old, "100", issued=date(2026, 6, 1))
    subscription_fee(old, "50", issued=date(2026, 6, 16))
    subscription("c2", scale)  # the new plan: nothing issued yet
    subscription_fee(subscription("e", euro), "50", issued=date(2026, 6, 1))
    subscription_fee(sub, "999", issued=date(2026, 6, 2), status=InvoiceStatus.VOIDED)


def _by_month(figures: list[analytics.MonthFigure], currency: str = "USD") -> dict[date, Decimal]:
    return {f.month: f.amount.quantize(Decimal("0.01")) for f in figures if f.currency == currency}


def test_mrr_worked_example(worked_example):
    usd = _by_month(analytics.mrr(months=3, today=TODAY))
    # June: monthly 108 + yearly 100 + quarterly 100 + old plan 100 and its 50 stub = 458
    assert usd == {
        date(2026, 4, 1): Decimal("200.00"),
        date(2026, 5, 1): Decimal("308.00"),
        date(2026, 6, 1): Decimal("458.00"),
    }
    assert _by_month(analytics.mrr(months=1, today=TODAY), "EUR") == {date(2026, 6, 1): Decimal("50.00")}
    assert _by_month(analytics.mrr(months=1, currency="eur", today=TODAY), "USD") == {}


def test_yearly_spread_reaches_back_twelve_months(worked_example):
    usd = _by_month(analytics.mrr(months=14, currency="USD", today=TODAY))
    assert usd[date(2025, 7, 1)] == Decimal("100.00")  # the yearly fee's oldest month
    assert date(2025, 6, 1) not in usd


def test_calendar_months():
    assert analytics.calendar_months(date(2026, 1, 1), date(2026, 4, 1)) == 3
    assert analytics.calendar_months(date(2025, 6, 1), date(2026, 6, 1)) == 12
    assert analytics.calendar_months(date(2026, 1, 16), date(2026, 2, 1)) == Decimal(16) / Decimal(31)


def test_gross_revenue_skips_voided_invoices(worked_example):
    june = [f for f in analytics.gross_revenue(months=1, today=TODAY) if f.currency == "USD"]
    assert [(f.amount, f.count) for f in june] == [(Decimal("1458"), 4)]


@pytest.fixture
def today(monkeypatch):
    """The API has no `today` parameter: it reads the date the analytics default to."""
    monkeypatch.setattr(analytics.timezone, "localdate", lambda *args: TODAY)


def _api(api_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.raw}")
    return client


def test_analytics_endpoints_in_lagos_shapes(worked_example, api_key, today):
    client = _api(api_key)
    body = client.get("/api/v1/analytics/mrr", {"currency": "USD", "months": 2}).json()
    assert body == {
        "mrrs": [
            {"month": "2026-05-01T00:00:00.000Z", "amount_cents": 30800, "currency": "USD"},
            {"month": "2026-06-01T00:00:00.000Z", "amount_cents": 45800, "currency": "USD"},
        ]
    }
    gross = client.get("/api/v1/analytics/gross_revenue", {"months": 1, "currency": "USD"}).json()
    assert gross["gross_revenues"] == [
        {"month": "2026-06-01T00:00:00.000Z", "amount_cents": 145800, "currency": "USD", "invoices_count": 4}
    ]
    customer = client.get("/api/v1/analytics/gross_revenue", {"months": 1, "external_customer_id": "y"}).json()
    assert [row["amount_cents"] for row in customer["gross_revenues"]] == [120000]
    collection = client.get("/api/v1/analytics/invoice_collection", {"months": 1}).json()["invoice_collections"]
    assert {(r["currency"], r["payment_status"], r["invoices_count"]) for r in collection} == {
        ("EUR", "pending", 1),
        ("USD", "pending", 4),
    }
    assert client.get("/api/v1/analytics/invoiced_usage").json() == {"invoiced_usages": []}
    assert client.get("/api/v1/analytics/overdue_balance").json() == {"overdue_balances": []}
    refused = client.get("/api/v1/analytics/mrr", {"currency": "XYZ"})
    assert refused.status_code == 422
    assert APIClient().get("/api/v1/analytics/mrr").status_code == 401


def test_overdue_balance_lists_the_invoices(worked_example, api_key, today):
    from invoicing.models import Invoice

    late = Invoice.objects.get(total_amount=1200)
    Invoice.objects.filter(pk=late.pk).update(payment_overdue=True, payment_due_date=date(2026, 6, 10))
    body = _api(api_key).get("/api/v1/analytics/overdue_balance", {"months": 1}).json()
    assert body == {
        "overdue_balances": [
            {
                "month": "2026-06-01T00:00:00.000Z",
                "amount_cents": 120000,
                "currency": "USD",
                "lago_invoice_ids": [str(late.pk)],
            }
        ]
    }
    assert CreditNote.objects.count() == 0


def test_months_are_bounded(api_key, today):
    client = _api(api_key)
    assert client.get("/api/v1/analytics/mrr", {"months": "999999999999"}).status_code == 200
    assert client.get("/api/v1/analytics/gross_revenue", {"months": "-3"}).status_code == 422
    assert analytics.month_window(10**9, TODAY)[0] == date(1926, 7, 1)
