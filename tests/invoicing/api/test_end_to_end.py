"""End to end through the API only: metrics, a tax, plans (every charge model; in arrears and in
advance; USD and JPY), customers and subscriptions started in the past, events, then
`run_invoices --at <period end>`, and every amount of the invoice JSON checked by hand.

Plan "e2e_arrears", USD, 100.00 a month in arrears, tax vat_20 (20%), January 2025:
    subscription fee (full January, in arrears)                          100.00
    standard      storage_gb 0.25/GB: 10 + 2.5 = 12.5 GB -> 3.125         ->   3.13
    graduated     calls: 0-100 at 0.10 + 1.00 flat, 101+ at 0.05; 150 calls:
                  100 x 0.10 + 1.00 = 11.00; 50 x 0.05 = 2.50             ->  13.50
    package       pages: 5.00 per 100, 100 free; 250 pages: 150 paid = 2 packages -> 10.00
    volume        seats (max): 0-5 at 10.00, 6+ at 8.00; max(3, 7, 5) = 7 x 8.00 -> 56.00
    percentage    payments: 2.5% + 0.30 per payment; 100 + 250.50 = 350.50:
                  8.7625 + 0.60 = 9.3625                                  ->   9.36
    graduated %   transfers: 0-1,000 at 1%, 1,001+ at 0.5%; 1,500:
                  1,000 x 1% = 10.00; 500 x 0.5% = 2.50                   ->  12.50
    fees                                                                     204.49
    VAT 20% of 204.49 = 40.898                                            ->  40.90
    total                                                                    245.39
Per fee, the tax is 20% of each fee: 20.00, 0.63 (0.626), 2.70, 2.00, 11.20, 1.87 (1.872), 2.50.

Plan "e2e_advance", USD, 30.00 a month in advance, standard calls 0.10: the invoice at
February 1st bills February's fee 30.00 and January's 40 calls, 4.00: 34.00 (no tax). Its
start on January 1st billed January's fee in advance: 30.00.

Plan "e2e_jpy", JPY (no minor unit), 1,000 a month in arrears, standard calls 0.5 yen:
7 calls = 3.5 -> 4 yen (half-up); 1,004 yen.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _ok(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.content
    return answer.json()


def _metric(api, code: str, aggregation: str, field: str | None = None) -> str:
    body = {"name": code, "code": code, "aggregation_type": aggregation}
    if field:
        body["field_name"] = field
    return _ok(api.post("/api/v1/billable_metrics", {"billable_metric": body}))["billable_metric"]["lago_id"]


def _charge(metric_id: str, model: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"billable_metric_id": metric_id, "charge_model": model, "properties": properties}


def _events(api, subscription: str, rows: Iterable[tuple[str, dict[str, Any]]]) -> None:
    events = [
        {
            "transaction_id": f"{subscription}-{index}",
            "external_subscription_id": subscription,
            "code": code,
            # Unix seconds, spread over January 2025 (UTC).
            "timestamp": int(datetime(2025, 1, 1 + index % 28, index % 24, tzinfo=UTC).timestamp()),
            "properties": properties,
        }
        for index, (code, properties) in enumerate(rows)
    ]
    for start in range(0, len(events), 100):
        _ok(api.post("/api/v1/events/batch", {"events": events[start : start + 100]}))


def _subscribe(api, customer: str, currency: str, plan: str, subscription: str) -> None:
    _ok(api.post("/api/v1/customers", {"customer": {"external_id": customer, "name": customer, "currency": currency}}))
    _ok(
        api.post(
            "/api/v1/subscriptions",
            {
                "subscription": {
                    "external_customer_id": customer,
                    "plan_code": plan,
                    "external_id": subscription,
                    "billing_time": "calendar",
                    "subscription_at": "2025-01-01T00:00:00Z",
                }
            },
        )
    )
    _recorded_at_start(subscription)


def _recorded_at_start(external_id: str) -> None:
    """As if the API call had been made on 2025-01-01: the catch-up policy never bills a period
    that ended before Tollgate was told of the subscription, and this story begins in January."""
    from plans.models import Subscription

    Subscription.objects.filter(external_id=external_id).update(recorded_at=datetime(2025, 1, 1, tzinfo=UTC))


def _invoices(api, customer: str) -> list[dict[str, Any]]:
    """The customer's invoices in full (GET /invoices/{id}), oldest first."""
    listed = _ok(api.get("/api/v1/invoices", {"external_customer_id": customer}))["invoices"]
    full = [_ok(api.get(f"/api/v1/invoices/{row['lago_id']}"))["invoice"] for row in listed]
    return sorted(full, key=lambda invoice: invoice["billing_periods"][0]["subscription_from_datetime"])


AMOUNT_KEYS = (
    "fees_amount_cents",
    "coupons_amount_cents",
    "sub_total_excluding_taxes_amount_cents",
    "taxes_amount_cents",
    "sub_total_including_taxes_amount_cents",
    "credit_notes_amount_cents",
    "prepaid_credit_amount_cents",
    "total_amount_cents",
    "total_due_amount_cents",
)


def _amounts(invoice: dict[str, Any]) -> dict[str, int]:
    return {key: invoice[key] for key in AMOUNT_KEYS}


def _totals(fees: int, taxes: int = 0) -> dict[str, int]:
    return {
        "fees_amount_cents": fees,
        "coupons_amount_cents": 0,
        "sub_total_excluding_taxes_amount_cents": fees,
        "taxes_amount_cents": taxes,
        "sub_total_including_taxes_amount_cents": fees + taxes,
        "credit_notes_amount_cents": 0,
        "prepaid_credit_amount_cents": 0,
        "total_amount_cents": fees + taxes,
        "total_due_amount_cents": fees + taxes,
    }


def test_every_charge_model_in_arrears_and_in_advance(api, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    metric = {
        "storage_gb": _metric(api, "storage_gb", "sum_agg", "gb"),
        "calls": _metric(api, "calls", "count_agg"),
        "pages": _metric(api, "pages", "sum_agg", "count"),
        "seats": _metric(api, "seats", "max_agg", "seats"),
        "payments": _metric(api, "payments", "sum_agg", "amount"),
        "transfers": _metric(api, "transfers", "sum_agg", "amount"),
    }
    _ok(api.post("/api/v1/taxes", {"tax": {"code": "vat_20", "name": "VAT", "rate": 20}}))
    arrears_plan = {
        "name": "E2E arrears",
        "code": "e2e_arrears",
        "interval": "monthly",
        "amount_cents": 10000,
        "amount_currency": "USD",
        "pay_in_advance": False,
        "tax_codes": ["vat_20"],
        "charges": [
            _charge(metric["storage_gb"], "standard", {"amount": "0.25"}),
            _charge(
                metric["calls"],
                "graduated",
                {
                    "graduated_ranges": [
                        {"from_value": 0, "to_value": 100, "per_unit_amount": "0.10", "flat_amount": "1.00"},
                        {"from_value": 101, "to_value": None, "per_unit_amount": "0.05", "flat_amount": "0"},
                    ]
                },
            ),
            _charge(metric["pages"], "package", {"amount": "5.00", "package_size": 100, "free_units": 100}),
            _charge(
                metric["seats"],
                "volume",
                {
                    "volume_ranges": [
                        {"from_value": 0, "to_value": 5, "per_unit_amount": "10.00", "flat_amount": "0"},
                        {"from_value": 6, "to_value": None, "per_unit_amount": "8.00", "flat_amount": "0"},
                    ]
                },
            ),
            _charge(metric["payments"], "percentage", {"rate": "2.5", "fixed_amount": "0.30"}),
            _charge(
                metric["transfers"],
                "graduated_percentage",
                {
                    "graduated_percentage_ranges": [
                        {"from_value": 0, "to_value": 1000, "rate": "1", "flat_amount": "0"},
                        {"from_value": 1001, "to_value": None, "rate": "0.5", "flat_amount": "0"},
                    ]
                },
            ),
        ],
    }
    _ok(api.post("/api/v1/plans", {"plan": arrears_plan}))
    _ok(
        api.post(
            "/api/v1/plans",
            {
                "plan": {
                    "name": "E2E advance",
                    "code": "e2e_advance",
                    "interval": "monthly",
                    "amount_cents": 3000,
                    "amount_currency": "USD",
                    "pay_in_advance": True,
                    "charges": [_charge(metric["calls"], "standard", {"amount": "0.10"})],
                }
            },
        )
    )
    _ok(
        api.post(
            "/api/v1/plans",
            {
                "plan": {
                    "name": "E2E JPY",
                    "code": "e2e_jpy",
                    "interval": "monthly",
                    "amount_cents": 1000,
                    "amount_currency": "JPY",
                    "charges": [_charge(metric["calls"], "standard", {"amount": "0.5"})],
                }
            },
        )
    )
    _subscribe(api, "e2e_arrears", "USD", "e2e_arrears", "sub_e2e_arrears")
    _subscribe(api, "e2e_advance", "USD", "e2e_advance", "sub_e2e_advance")
    _subscribe(api, "e2e_jpy", "JPY", "e2e_jpy", "sub_e2e_jpy")
    _events(
        api,
        "sub_e2e_arrears",
        [
            ("storage_gb", {"gb": "10"}),
            ("storage_gb", {"gb": "2.5"}),
            *[("calls", {}) for _ in range(150)],
            ("pages", {"count": 250}),
            ("seats", {"seats": 3}),
            ("seats", {"seats": 7}),
            ("seats", {"seats": 5}),
            ("payments", {"amount": "100"}),
            ("payments", {"amount": "250.50"}),
            ("transfers", {"amount": 1500}),
        ],
    )
    _events(api, "sub_e2e_advance", [("calls", {}) for _ in range(40)])
    _events(api, "sub_e2e_jpy", [("calls", {}) for _ in range(7)])

    call_command("run_invoices", at="2025-02-01T00:00:00Z")
    call_command("run_invoices", at="2025-02-01T00:00:00Z")  # a second run bills nothing new

    # --- in arrears, every charge model -----------------------------------------------------
    (arrears,) = _invoices(api, "e2e_arrears")
    assert (arrears["status"], arrears["invoice_type"], arrears["currency"]) == ("finalized", "subscription", "USD")
    assert arrears["issuing_date"] == "2025-02-01"
    assert _amounts(arrears) == _totals(fees=20449, taxes=4090)
    fees = {
        (fee["item"]["type"], fee["item"]["code"]): (fee["units"], fee["amount_cents"], fee["taxes_amount_cents"])
        for fee in arrears["fees"]
    }
    assert fees == {
        ("subscription", "e2e_arrears"): ("1", 10000, 2000),
        ("charge", "storage_gb"): ("12.5", 313, 63),
        ("charge", "calls"): ("150", 1350, 270),
        ("charge", "pages"): ("250", 1000, 200),
        ("charge", "seats"): ("7", 5600, 1120),
        ("charge", "payments"): ("350.5", 936, 187),
        ("charge", "transfers"): ("1500", 1250, 250),
    }
    by_code = {fee["item"]["code"]: fee for fee in arrears["fees"]}
    assert by_code["storage_gb"]["precise_amount"] == "3.125"
    assert by_code["payments"]["precise_amount"] == "9.3625"
    assert by_code["calls"]["events_count"] == 150
    assert [(t["tax_code"], t["amount_cents"], t["fees_amount_cents"]) for t in arrears["applied_taxes"]] == [
        ("vat_20", 4090, 20449)
    ]
    assert arrears["billing_periods"][0]["invoicing_reason"] == "subscription_periodic"
    assert (
        arrears["billing_periods"][0]["charges_from_datetime"],
        arrears["billing_periods"][0]["charges_to_datetime"],
    ) == ("2025-01-01T00:00:00Z", "2025-01-31T23:59:59Z")

    # --- in advance --------------------------------------------------------------------------
    starting, periodic = _invoices(api, "e2e_advance")
    assert starting["billing_periods"][0]["invoicing_reason"] == "subscription_starting"
    assert _amounts(starting) == _totals(fees=3000)
    assert periodic["billing_periods"][0]["invoicing_reason"] == "subscription_periodic"
    assert periodic["billing_periods"][0]["subscription_from_datetime"] == "2025-02-01T00:00:00Z"
    assert periodic["billing_periods"][0]["charges_from_datetime"] == "2025-01-01T00:00:00Z"
    assert _amounts(periodic) == _totals(fees=3400)
    assert sorted((f["item"]["type"], f["amount_cents"]) for f in periodic["fees"]) == [
        ("charge", 400),
        ("subscription", 3000),
    ]

    # --- JPY ---------------------------------------------------------------------------------
    (jpy,) = _invoices(api, "e2e_jpy")
    assert jpy["currency"] == "JPY"
    assert _amounts(jpy) == _totals(fees=1004)
    assert sorted(f["amount_cents"] for f in jpy["fees"]) == [4, 1000]

    # Every finalized invoice has its PDF (rendered after commit).
    for invoice in (arrears, periodic, jpy):
        downloaded = _ok(api.post(f"/api/v1/invoices/{invoice['lago_id']}/download"))["invoice"]
        assert downloaded["file_url"]
