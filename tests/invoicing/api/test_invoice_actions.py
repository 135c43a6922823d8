"""Invoice actions through the API, on invoices made by the real billing run: refresh a draft
after a late event, finalize it (number, frozen customer, PDF), download its signed PDF, update
its payment status and metadata, void it; one-off invoices. Lago's refusals, never a 500.

The draft: customer `late` (3 days of grace), plan "startup" (conftest: 49.00 a month in arrears,
api_calls graduated 0-1,000 free then 0.002, storage_gb 0.25 per GB), January 2025:
    1,200 calls: 200 x 0.002 = 0.40;  10 + 2.5 GB = 12.5 x 0.25 = 3.125 -> 3.13
    fees 49.00 + 0.40 + 3.13 = 52.53 (no tax applies: vat_20 is not the organization's)
A late event of 300 more calls: 500 x 0.002 = 1.00, fees 53.13.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from lago_python_client.models.invoice import InvoiceResponse
from pypdf import PdfReader

from invoicing import runs
from invoicing.models import Invoice, InvoiceEvent
from plans import services as plan_services
from tests.factories.customers import make_customer
from tests.factories.metrics import make_event, make_events
from tests.factories.plans import make_subscription

from .conftest import catalog

pytestmark = pytest.mark.django_db

JAN_1 = datetime(2025, 1, 1, tzinfo=UTC)
FEB_1 = datetime(2025, 2, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def draft(db) -> Invoice:
    plan, _ = catalog()
    customer = make_customer(external_id="late", currency="USD", invoice_grace_period=3, name="Late Payer")
    make_subscription(customer=customer, plan=plan, external_id="sub_late", subscription_at=JAN_1, now=JAN_1)
    make_events(
        {"code": "api_calls", "external_subscription_id": "sub_late", "timestamp": datetime(2025, 1, 2, tzinfo=UTC)}
        for _ in range(1200)
    )
    for gb, day in (("10", 3), ("2.5", 20)):
        make_event(
            code="storage_gb",
            external_subscription_id="sub_late",
            timestamp=datetime(2025, 1, day, tzinfo=UTC),
            properties={"gb": gb},
        )
    summary = runs.bill_due(at=FEB_1, actor="test")
    assert summary.created == 1, summary.errors
    return Invoice.objects.get(pk=summary.invoice_ids[0])


def _amounts(body: dict) -> tuple[int, int, int, int]:
    return (
        body["fees_amount_cents"],
        body["taxes_amount_cents"],
        body["total_amount_cents"],
        body["total_due_amount_cents"],
    )


def test_refresh_a_draft_after_a_late_event(api, draft):
    before = api.get(f"/api/v1/invoices/{draft.pk}").json()["invoice"]
    assert (before["status"], before["number"]) == ("draft", "TOL-DRAFT")
    assert _amounts(before) == (5253, 0, 5253, 0)  # nothing is due on a draft
    make_events(
        {
            "code": "api_calls",
            "external_subscription_id": "sub_late",
            "timestamp": datetime(2025, 1, 31, 23, tzinfo=UTC),
        }
        for _ in range(300)
    )

    answer = api.put(f"/api/v1/invoices/{draft.pk}/refresh")

    assert answer.status_code == 200
    body = answer.json()["invoice"]
    InvoiceResponse.parse_obj(body)
    assert _amounts(body) == (5313, 0, 5313, 0)
    calls = next(fee for fee in body["fees"] if fee["item"]["code"] == "api_calls")
    assert (calls["units"], calls["events_count"], calls["amount_cents"]) == ("1500", 1500, 100)
    assert InvoiceEvent.objects.filter(invoice=draft, kind="refreshed", actor__startswith="api:").exists()


def test_finalize_then_download_then_void(api, client, draft, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        finalized = api.put(f"/api/v1/invoices/{draft.pk}/finalize")

    assert finalized.status_code == 200
    body = finalized.json()["invoice"]
    InvoiceResponse.parse_obj(body)
    assert body["status"] == "finalized"
    assert body["number"].startswith("TOL-") and body["number"] != "TOL-DRAFT"
    assert _amounts(body) == (5253, 0, 5253, 5253)
    assert body["customer"]["name"] == "Late Payer"

    downloaded = api.post(f"/api/v1/invoices/{draft.pk}/download")
    assert downloaded.status_code == 200
    file_url = downloaded.json()["invoice"]["file_url"]
    assert file_url.startswith("http://testserver/api/v1/documents/")
    document = client.get(file_url.removeprefix("http://testserver"))
    assert document.status_code == 200
    text = " ".join(PdfReader(io.BytesIO(b"".join(document.streaming_content))).pages[0].extract_text().split())
    assert body["number"] in text
    assert "USD 52.53" in text
    assert "Late Payer" in text

    # Finalizing again changes nothing; refreshing a finalized invoice changes nothing either.
    again = api.put(f"/api/v1/invoices/{draft.pk}/finalize").json()["invoice"]
    refreshed = api.put(f"/api/v1/invoices/{draft.pk}/refresh").json()["invoice"]
    assert (again["number"], _amounts(again)) == (body["number"], _amounts(body))
    assert _amounts(refreshed) == _amounts(body)

    voided = api.post(f"/api/v1/invoices/{draft.pk}/void")
    assert voided.status_code == 200
    assert voided.json()["invoice"]["status"] == "voided"
    assert voided.json()["invoice"]["voided_at"] is not None
    assert voided.json()["invoice"]["total_due_amount_cents"] == 0

    void_again = api.post(f"/api/v1/invoices/{draft.pk}/void")
    finalize_voided = api.put(f"/api/v1/invoices/{draft.pk}/finalize")
    assert void_again.status_code == 405
    assert void_again.json() == {"status": 405, "error": "Method Not Allowed", "code": "not_voidable"}
    assert finalize_voided.json()["code"] == "is_not_draft"


def test_a_draft_has_no_pdf_to_download(api, draft):
    answer = api.post(f"/api/v1/invoices/{draft.pk}/download")

    assert answer.status_code == 404
    assert answer.json()["code"] == "invoice_not_found"


def test_update_payment_status_and_metadata(api, draft):
    refused = api.put(f"/api/v1/invoices/{draft.pk}", {"invoice": {"payment_status": "succeeded"}})
    assert refused.status_code == 405
    assert refused.json()["code"] == "invoice_not_finalized"

    api.put(f"/api/v1/invoices/{draft.pk}/finalize")
    answer = api.put(
        f"/api/v1/invoices/{draft.pk}",
        {"invoice": {"payment_status": "succeeded", "metadata": [{"key": "po", "value": "PO-1"}]}},
    )

    assert answer.status_code == 200
    body = answer.json()["invoice"]
    assert body["payment_status"] == "succeeded"
    assert [(m["key"], m["value"]) for m in body["metadata"]] == [("po", "PO-1")]
    assert _amounts(body) == (5253, 0, 5253, 5253)  # amounts never move through an update
    # A paid invoice cannot be voided.
    assert api.post(f"/api/v1/invoices/{draft.pk}/void").json()["code"] == "not_voidable"


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({}, 400, {"status": 400, "error": "BadRequest: param is missing or the value is empty: invoice"}),
        ({"invoice": {"payment_status": "paid"}}, 422, {"payment_status": ["value_is_invalid"]}),
        ({"invoice": {"metadata": "x"}}, 422, {"metadata": ["value_is_invalid"]}),
        ({"invoice": {"metadata": [{"value": "no key"}]}}, 422, {"metadata": {"0": {"key": ["value_is_mandatory"]}}}),
    ],
)
def test_update_refuses_bad_input(api, draft, body, status, expected):
    answer = api.put(f"/api/v1/invoices/{draft.pk}", body)

    assert answer.status_code == status
    if status == 422:
        assert answer.json()["error_details"] == expected
    else:
        assert answer.json() == expected


@pytest.mark.parametrize("path", ["refresh", "finalize", "void", "download"])
def test_actions_on_unknown_invoices(api, path):
    method = api.put if path in ("refresh", "finalize") else api.post

    answer = method(f"/api/v1/invoices/not-a-uuid/{path}")

    assert answer.status_code == 404
    assert answer.json()["code"] == "invoice_not_found"


# --------------------------------------------------------------------------------------------
# One-off invoices


@pytest.fixture
def add_on(db):
    catalog()
    return plan_services.add_on_create(
        name="Setup", code="setup", amount_cents=50000, amount_currency="USD", description="Onboarding"
    )


def test_one_off_invoice(api, add_on, django_capture_on_commit_callbacks):
    make_customer(external_id="oneoff", currency="USD")

    with django_capture_on_commit_callbacks(execute=True):
        answer = api.post(
            "/api/v1/invoices",
            {
                "invoice": {
                    "external_customer_id": "oneoff",
                    "currency": "USD",
                    "fees": [
                        {"add_on_code": "setup"},  # the add-on's price: 500.00
                        {"add_on_code": "setup", "units": "2.5", "unit_amount_cents": 1999, "description": "Hours"},
                    ],
                }
            },
        )

    assert answer.status_code == 200, answer.json()
    body = answer.json()["invoice"]
    InvoiceResponse.parse_obj(body)
    # 500.00 + 2.5 x 19.99 = 49.975 -> 49.98; 549.98 in all.
    assert (body["invoice_type"], body["status"]) == ("one_off", "finalized")
    assert [(f["item"]["type"], f["units"], f["amount_cents"]) for f in body["fees"]] == [
        ("add_on", "1", 50000),
        ("add_on", "2.5", 4998),
    ]
    assert body["fees"][1]["precise_amount"] == "49.975"
    assert body["fees"][1]["description"] == "Hours"
    assert _amounts(body) == (54998, 0, 54998, 54998)
    assert Invoice.objects.get(pk=body["lago_id"]).file  # rendered after commit


@pytest.mark.parametrize(
    ("invoice", "status", "code", "details"),
    [
        ({"external_customer_id": "nobody", "fees": [{"add_on_code": "setup"}]}, 404, "customer_not_found", None),
        ({"external_customer_id": "oneoff", "fees": [{"add_on_code": "nope"}]}, 404, "add_on_not_found", None),
        ({"external_customer_id": "oneoff", "fees": []}, 422, "validation_errors", {"fees": ["value_is_invalid"]}),
        (
            {"external_customer_id": "oneoff", "fees": [{"add_on_code": "setup", "unit_amount_cents": "12"}]},
            422,
            "validation_errors",
            {"fees": {"0": {"unit_amount_cents": ["value_is_invalid"]}}},
        ),
        (
            {"external_customer_id": "oneoff", "fees": [{"add_on_code": "setup", "units": -1}]},
            422,
            "validation_errors",
            {"fees": {"0": {"units": ["value_is_invalid"]}}},
        ),
        (
            {"external_customer_id": "oneoff", "currency": "EUR", "fees": [{"add_on_code": "setup"}]},
            422,
            "currencies_does_not_match",
            None,
        ),
        (
            {"external_customer_id": "oneoff", "currency": "XYZ", "fees": [{"add_on_code": "setup"}]},
            422,
            "validation_errors",
            {"currency": ["value_is_invalid"]},
        ),
    ],
)
def test_one_off_refusals(api, add_on, invoice, status, code, details):
    make_customer(external_id="oneoff", currency="USD")

    answer = api.post("/api/v1/invoices", {"invoice": invoice})

    assert answer.status_code == status, answer.json()
    assert answer.json()["code"] == code
    assert answer.json().get("error_details") == details
    assert not Invoice.objects.exists()  # nothing half-written


def test_one_off_amounts_are_exact_in_jpy_and_bhd(api, db):
    catalog()
    plan_services.add_on_create(name="Pack", code="pack_jpy", amount_cents=1000, amount_currency="JPY")
    make_customer(external_id="tokyo", currency="JPY")
    make_customer(external_id="manama", currency="BHD")

    jpy = api.post(
        "/api/v1/invoices",
        {"invoice": {"external_customer_id": "tokyo", "fees": [{"add_on_code": "pack_jpy", "units": "1.5"}]}},
    ).json()["invoice"]
    bhd = api.post(
        "/api/v1/invoices",
        {
            "invoice": {
                "external_customer_id": "manama",
                "currency": "BHD",
                "fees": [{"add_on_code": "pack_jpy", "units": "3", "unit_amount_cents": 1235}],
            }
        },
    ).json()["invoice"]

    # JPY has no minor unit: 1.5 x 1,000 = 1,500 yen, 1500 "cents". BHD has three: 3 x 1.235 = 3.705.
    assert (jpy["currency"], jpy["total_amount_cents"]) == ("JPY", 1500)
    assert (bhd["currency"], bhd["total_amount_cents"]) == ("BHD", 3705)
    assert Decimal(bhd["fees"][0]["precise_amount"]) == Decimal("3.705")
