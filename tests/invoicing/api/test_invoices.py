"""Invoices and fees API: Lago's shapes (every amount of the conftest invoice, by hand), filters,
Lago's error codes, constant queries per page, and the routes it must leave to payments."""

from __future__ import annotations

from datetime import date

import pytest
from lago_python_client.models.fee import FeeResponse
from lago_python_client.models.invoice import InvoiceResponse

from invoicing.models import InvoiceStatus, InvoiceType
from tests.factories.customers import make_customer

from .conftest import make_invoice

pytestmark = pytest.mark.django_db


def test_one_invoice_in_lago_shape(api, invoice):
    answer = api.get(f"/api/v1/invoices/{invoice.pk}")

    assert answer.status_code == 200
    body = answer.json()["invoice"]
    InvoiceResponse.parse_obj(body)
    assert body["lago_id"] == str(invoice.pk)
    assert body["number"] == invoice.number
    assert (body["status"], body["payment_status"], body["invoice_type"]) == ("finalized", "pending", "subscription")
    assert (body["issuing_date"], body["payment_due_date"], body["net_payment_term"]) == (
        "2025-02-01",
        "2025-02-16",
        15,
    )
    # The amounts of the conftest docstring, in cents.
    assert {key: value for key, value in body.items() if key.endswith("_amount_cents")} == {
        "fees_amount_cents": 5313,
        "taxes_amount_cents": 863,
        "progressive_billing_credit_amount_cents": 0,
        "coupons_amount_cents": 1000,
        "credit_notes_amount_cents": 0,
        "sub_total_excluding_taxes_amount_cents": 4313,
        "sub_total_including_taxes_amount_cents": 5176,
        "total_amount_cents": 5176,
        "total_due_amount_cents": 5176,
        "total_paid_amount_cents": 0,
        "total_offsetted_credit_note_amount_cents": 0,
        "prepaid_credit_amount_cents": 0,
        "prepaid_granted_credit_amount_cents": 0,
        "prepaid_purchased_credit_amount_cents": 0,
    }
    assert body["file_url"] is None  # no PDF rendered yet
    assert body["version_number"] == 4
    # Finalized: the customer as frozen at finalization.
    assert body["customer"]["external_id"] == invoice.customer.external_id
    assert (body["customer"]["legal_name"], body["customer"]["city"]) == (f"{invoice.customer.name} Ltd", "Paris")
    assert body["metadata"] == [
        {"lago_id": "8f0e8e0e-0000-4000-8000-000000000001", "key": "po", "value": "PO-7", "created_at": None}
    ]
    assert [
        (t["tax_code"], t["tax_rate"], t["amount_cents"], t["fees_amount_cents"]) for t in body["applied_taxes"]
    ] == [("vat_20", 20.0, 863, 4313)]
    assert [s["external_id"] for s in body["subscriptions"]] == [f"sub_{invoice.customer.external_id}"]
    assert body["billing_periods"] == [
        {
            "lago_subscription_id": body["subscriptions"][0]["lago_id"],
            "external_subscription_id": f"sub_{invoice.customer.external_id}",
            "lago_plan_id": body["billing_periods"][0]["lago_plan_id"],
            "subscription_from_datetime": "2025-01-01T00:00:00Z",
            "subscription_to_datetime": "2025-01-31T23:59:59Z",
            "charges_from_datetime": "2025-01-01T00:00:00Z",
            "charges_to_datetime": "2025-01-31T23:59:59Z",
            "invoicing_reason": "subscription_periodic",
        }
    ]
    assert [(c["item"]["type"], c["amount_cents"], c["before_taxes"]) for c in body["credits"]] == [
        ("coupon", 1000, True)
    ]


def test_fees_inside_the_invoice(api, invoice):
    fees = api.get(f"/api/v1/invoices/{invoice.pk}").json()["invoice"]["fees"]

    for fee in fees:
        FeeResponse.parse_obj(fee)
    by_type = [(f["item"]["type"], f["item"]["code"], f["amount_cents"], f["units"]) for f in fees]
    assert by_type == [
        ("subscription", "startup", 4900, "1"),
        ("charge", "api_calls", 100, "1500"),
        ("charge", "storage_gb", 313, "12.5"),
    ]
    subscription_fee, api_calls, storage = fees
    # 49.00 with a 10.00 coupon share: 39.00 taxed at 20% = 7.80; total 49.00 + 7.80.
    assert (subscription_fee["sub_total_excluding_taxes_amount_cents"], subscription_fee["taxes_amount_cents"]) == (
        3900,
        780,
    )
    assert subscription_fee["precise_coupons_amount_cents"] == "1000"
    assert subscription_fee["total_amount_cents"] == 5680
    assert subscription_fee["item"]["item_type"] == "Subscription"
    # The precise amount keeps the half cent the rounded one dropped.
    assert (storage["precise_amount"], storage["amount_cents"], storage["precise_unit_amount"]) == (
        "3.125",
        313,
        "0.25",
    )
    assert storage["precise_total_amount"] == "3.75"  # 3.125 + 0.625
    assert api_calls["item"]["invoice_display_name"] == "API calls"
    assert api_calls["amount_details"]["tiers"][1]["units"] == "500"
    assert (api_calls["from_date"], api_calls["to_date"]) == ("2025-01-01T00:00:00Z", "2025-01-31T23:59:59Z")
    assert [(t["tax_code"], t["amount_cents"]) for t in api_calls["applied_taxes"]] == [("vat_20", 20)]
    assert {f["external_customer_id"] for f in fees} == {invoice.customer.external_id}


def test_a_draft_shows_the_live_customer(api):
    draft = make_invoice(status=InvoiceStatus.DRAFT)

    body = api.get(f"/api/v1/invoices/{draft.pk}").json()["invoice"]

    assert (body["number"], body["status"], body["sequential_id"]) == ("TOL-DRAFT", "draft", None)
    assert body["customer"]["legal_name"] is None
    assert body["total_due_amount_cents"] == 0  # nothing is due on a draft


@pytest.mark.parametrize("invoice_id", ["nope", "3f0b8a52-6c1e-4d7a-9e2b-5a4c1d0e7f90", "1"])
def test_unknown_invoice(api, invoice_id):
    answer = api.get(f"/api/v1/invoices/{invoice_id}")

    assert answer.status_code == 404
    assert answer.json() == {"status": 404, "error": "Not Found", "code": "invoice_not_found"}


def test_list_short_form_and_pagination(api):
    customer = make_customer(external_id="acme", currency="USD")
    older = make_invoice(customer=customer, issuing_date=date(2025, 1, 1))
    newer = make_invoice(customer=customer, issuing_date=date(2025, 2, 1))
    make_invoice(issuing_date=date(2025, 3, 1))

    page = api.get("/api/v1/invoices", {"external_customer_id": "acme", "per_page": 1}).json()
    second = api.get("/api/v1/invoices", {"external_customer_id": "acme", "per_page": 1, "page": 2}).json()

    assert [i["lago_id"] for i in page["invoices"]] == [str(newer.pk)]
    assert [i["lago_id"] for i in second["invoices"]] == [str(older.pk)]
    assert page["meta"] == {"current_page": 1, "next_page": 2, "prev_page": None, "total_pages": 2, "total_count": 2}
    # Lago's list form: customer, metadata and applied taxes, no fees.
    InvoiceResponse.parse_obj(page["invoices"][0])
    assert "fees" not in page["invoices"][0]
    assert page["invoices"][0]["applied_taxes"][0]["amount_cents"] == 863


def test_list_filters(api):
    draft = make_invoice(status=InvoiceStatus.DRAFT, issuing_date=date(2025, 1, 15))
    paid = make_invoice(payment_status="succeeded", issuing_date=date(2025, 2, 1))
    one_off = make_invoice(invoice_type=InvoiceType.ONE_OFF, issuing_date=date(2025, 3, 1), payment_overdue=True)

    def ids(**params):
        answer = api.get("/api/v1/invoices", params)
        assert answer.status_code == 200, answer.json()
        return {i["lago_id"] for i in answer.json()["invoices"]}

    assert ids(status="draft") == {str(draft.pk)}
    assert ids(payment_status="succeeded") == {str(paid.pk)}
    assert ids(invoice_type="one_off") == {str(one_off.pk)}
    assert ids(issuing_date_from="2025-02-01") == {str(paid.pk), str(one_off.pk)}
    assert ids(issuing_date_from="2025-01-20", issuing_date_to="2025-02-28") == {str(paid.pk)}
    assert ids(payment_overdue="true") == {str(one_off.pk)}
    assert ids(external_customer_id="nobody") == set()


@pytest.mark.parametrize(
    ("params", "details"),
    [
        ({"status": "paid"}, {"status": ["value_is_invalid"]}),
        ({"payment_status": "x"}, {"payment_status": ["value_is_invalid"]}),
        ({"invoice_type": "x"}, {"invoice_type": ["value_is_invalid"]}),
        ({"issuing_date_from": "2025-13-45"}, {"issuing_date_from": ["invalid_date"]}),
        ({"issuing_date_to": "yesterday"}, {"issuing_date_to": ["invalid_date"]}),
        ({"payment_overdue": "maybe"}, {"payment_overdue": ["value_is_invalid"]}),
    ],
)
def test_list_refuses_bad_filters(api, params, details):
    answer = api.get("/api/v1/invoices", params)

    assert answer.status_code == 422
    assert answer.json() == {
        "status": 422,
        "error": "Unprocessable Entity",
        "code": "validation_errors",
        "error_details": details,
    }


def test_list_queries_do_not_grow_with_the_page(api, django_assert_max_num_queries):
    for _ in range(3):
        make_invoice()
    with django_assert_max_num_queries(8) as few:
        api.get("/api/v1/invoices")
    for _ in range(12):
        make_invoice()
    with django_assert_max_num_queries(len(few.captured_queries)):
        answer = api.get("/api/v1/invoices")
    assert len(answer.json()["invoices"]) == 15


def test_one_invoice_queries_do_not_grow_with_its_fees(api, invoice, django_assert_max_num_queries):
    with django_assert_max_num_queries(20) as counted:
        api.get(f"/api/v1/invoices/{invoice.pk}")
    bigger = make_invoice()
    fee = bigger.fees.first()
    for _ in range(10):
        fee.pk = None
        fee.save()
    with django_assert_max_num_queries(len(counted.captured_queries)):
        answer = api.get(f"/api/v1/invoices/{bigger.pk}")
    assert len(answer.json()["invoice"]["fees"]) == 13


def test_fees_list_and_one(api, invoice, django_assert_max_num_queries):
    make_invoice()
    with django_assert_max_num_queries(6):
        listed = api.get("/api/v1/fees", {"external_customer_id": invoice.customer.external_id}).json()
    assert len(listed["fees"]) == 3
    assert listed["meta"]["total_count"] == 3
    for fee in listed["fees"]:
        FeeResponse.parse_obj(fee)
    charge_fees = api.get("/api/v1/fees", {"fee_type": "charge", "billable_metric_code": "storage_gb"}).json()
    assert {f["amount_cents"] for f in charge_fees["fees"]} == {313}
    assert charge_fees["meta"]["total_count"] == 2

    one = listed["fees"][0]
    found = api.get(f"/api/v1/fees/{one['lago_id']}")
    assert found.status_code == 200
    assert found.json()["fee"] == one
    assert api.get("/api/v1/fees/nope").json()["code"] == "fee_not_found"
    assert api.get("/api/v1/fees", {"fee_type": "x"}).status_code == 422


def test_needs_an_api_key(anon_api, invoice):
    assert anon_api.get("/api/v1/invoices").status_code == 401
    assert anon_api.get(f"/api/v1/invoices/{invoice.pk}").status_code == 401
    assert anon_api.post(f"/api/v1/invoices/{invoice.pk}/download").status_code == 401


def test_retry_payment_stays_with_payments(api, invoice):
    """invoices/<id>/retry_payment is payments' route: ours must not answer it."""
    from django.urls import resolve

    assert resolve(f"/api/v1/invoices/{invoice.pk}/retry_payment").url_name == "invoice-retry-payment"
    assert resolve(f"/api/v1/invoices/{invoice.pk}").url_name == "invoice"
