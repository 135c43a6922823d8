"""Credit notes API: Lago's paths, shapes and error codes; a refused request leaves nothing."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from invoicing.models import CreditNote, InvoiceEvent, InvoiceStatus
from tests.factories.credit_notes import fee_of, make_credit_note, make_invoice, tax
from tests.factories.customers import make_customer

pytestmark = pytest.mark.django_db

URL = "/api/v1/credit_notes"


@pytest.fixture
def invoice():
    # One fee of 100.00 with 20% VAT: total 120.00, of which 60.00 paid.
    return make_invoice(
        customer=make_customer(external_id="cn_api"),
        fees=[{"amount": "100.00", "taxes": [tax("vat_20", "20")]}],
        paid="60.00",
    )


def body(invoice, **fields):
    fields.setdefault("items", [{"fee_id": str(fee_of(invoice).pk), "amount_cents": 5000}])
    return {"credit_note": {"invoice_id": str(invoice.pk), "reason": "product_unsatisfactory", **fields}}


def test_create_show_and_list(api, invoice):
    # 50.00 + 20% = 60.00: 20.00 credited, 40.00 refunded.
    created = api.post(URL, body(invoice, credit_amount_cents=2000, refund_amount_cents=4000, description="Late"))

    assert created.status_code == 200, created.json()
    note = created.json()["credit_note"]
    assert note["number"] == f"{invoice.number}-CN001"
    assert (note["lago_invoice_id"], note["invoice_number"]) == (str(invoice.pk), invoice.number)
    assert (note["reason"], note["description"], note["currency"]) == ("product_unsatisfactory", "Late", "USD")
    assert (note["credit_status"], note["refund_status"]) == ("available", "pending")
    amounts = {k: note[k] for k in note if k.endswith("_amount_cents") and not k.startswith("precise")}
    assert amounts == {
        "total_amount_cents": 6000,
        "taxes_amount_cents": 1000,
        "sub_total_excluding_taxes_amount_cents": 5000,
        "balance_amount_cents": 2000,
        "credit_amount_cents": 2000,
        "refund_amount_cents": 4000,
        "offset_amount_cents": 0,
        "coupons_adjustment_amount_cents": 0,
    }
    assert note["taxes_rate"] == 20.0
    assert [(i["amount_cents"], i["fee"]["lago_id"]) for i in note["items"]] == [(5000, str(fee_of(invoice).pk))]
    assert [(t["tax_code"], t["base_amount_cents"], t["amount_cents"]) for t in note["applied_taxes"]] == [
        ("vat_20", 5000, 1000)
    ]
    assert note["customer"]["external_id"] == "cn_api"
    event = InvoiceEvent.objects.get(kind="credit_note_created")
    assert event.actor == "api:test"

    shown = api.get(f"{URL}/{note['lago_id']}").json()["credit_note"]
    assert shown == note
    listed = api.get(URL, {"external_customer_id": "cn_api"}).json()
    assert [n["lago_id"] for n in listed["credit_notes"]] == [note["lago_id"]]
    assert listed["meta"]["total_count"] == 1
    assert api.get(URL, {"external_customer_id": "someone_else"}).json()["credit_notes"] == []
    assert api.get(URL, {"credit_status": "voided"}).json()["credit_notes"] == []
    assert api.get(URL, {"credit_status": "spent"}).status_code == 422
    assert api.get("/api/v1/customers/cn_api/credit_notes").json()["meta"]["total_count"] == 1


def test_without_amounts_everything_is_credited(api, invoice):
    note = api.post(URL, body(invoice)).json()["credit_note"]
    assert (note["credit_amount_cents"], note["refund_amount_cents"], note["refund_status"]) == (6000, 0, None)


@pytest.mark.parametrize(
    ("change", "status", "expected"),
    [
        ({"invoice_id": str(uuid.uuid4())}, 404, {"code": "invoice_not_found"}),
        ({"invoice_id": "not-a-uuid"}, 404, {"code": "invoice_not_found"}),
        ({"items": [{"fee_id": str(uuid.uuid4()), "amount_cents": 100}]}, 404, {"code": "fee_not_found"}),
        (
            {"items": [{"fee_id": "not-a-uuid", "amount_cents": 100}]},
            404,
            {"code": "fee_not_found"},
        ),
        ({"items": "all"}, 422, {"error_details": {"items": ["must_be_an_array"]}}),
        ({"reason": "bored"}, 422, {"error_details": {"reason": ["value_is_invalid"]}}),
        ({"credit_amount_cents": "60"}, 422, {"error_details": {"credit_amount_cents": ["value_is_invalid"]}}),
        ({"refund_amount_cents": -1}, 422, {"error_details": {"refund_amount_cents": ["value_is_invalid"]}}),
        ({"offset_amount_cents": 100}, 422, {"error_details": {"offset_amount_cents": ["value_is_invalid"]}}),
        (
            {"items": "FEE-10001"},
            422,
            {"error_details": {"items": ["must_be_an_array"]}},
        ),
        (
            {"credit_amount_cents": 6000, "refund_amount_cents": 0, "items": "OVER"},
            422,
            {"error_details": {"amount_cents": ["higher_than_remaining_fee_amount"]}},
        ),
        (
            {"credit_amount_cents": 0, "refund_amount_cents": 7000, "items": "HALF"},
            422,
            {
                "error_details": {
                    "base": ["does_not_match_item_amounts", "higher_than_remaining_invoice_amount"],
                    "refund_amount_cents": ["higher_than_remaining_invoice_amount"],
                }
            },
        ),
        (
            {"credit_amount_cents": 0, "refund_amount_cents": 6000, "items": "HALF"},
            422,
            {"error_details": {"refund_amount_cents": ["higher_than_remaining_invoice_amount"]}},
        ),
        (
            {"items": [{"amount_cents": -5, "fee_id": "FEE"}]},
            422,
            {"error_details": {"amount_cents": ["invalid_value"]}},
        ),
        (
            {"items": [{"amount_cents": 0, "fee_id": "FEE"}]},
            422,
            {"error_details": {"base": ["total_amount_must_be_positive"]}},
        ),
    ],
)
def test_refused_requests_leave_nothing(api, invoice, change, status, expected):
    fee_id = str(fee_of(invoice).pk)
    make_credit_note(
        invoice=invoice,
        items=[(fee_of(invoice), "50.00")],
        credit_amount=Decimal("50.00"),
        refund_amount=Decimal("10.00"),
    )
    if change.get("items") == "OVER":
        change["items"] = [{"fee_id": fee_id, "amount_cents": 5001}]
    elif change.get("items") == "HALF":
        change["items"] = [{"fee_id": fee_id, "amount_cents": 5000}]
    elif isinstance(change.get("items"), list):
        change["items"] = [
            {**item, "fee_id": fee_id if item["fee_id"] == "FEE" else item["fee_id"]} for item in change["items"]
        ]
    before = CreditNote.objects.count()
    # After the earlier note (50.00 + 10.00 VAT, of which 10.00 refunded), 60.00 is left to credit and
    # 50.00 of what was paid to refund.
    answer = api.post(URL, body(invoice, **change))

    assert answer.status_code == status, answer.json()
    assert answer.json() == {
        "status": status,
        "error": answer.json()["error"],
        **{"code": "validation_errors", **expected},
    }
    assert CreditNote.objects.count() == before


def test_shape_errors(api, invoice):
    assert api.post(URL, {"note": {}}).json() == {
        "status": 400,
        "error": "BadRequest: param is missing or the value is empty: credit_note",
    }
    draft = make_invoice(fees=[{"amount": "10.00"}], status=InvoiceStatus.DRAFT)
    refused = api.post(URL, body(draft))
    assert (refused.status_code, refused.json()) == (
        405,
        {"status": 405, "error": "Method Not Allowed", "code": "invalid_type_or_status"},
    )
    assert api.get(f"{URL}/{uuid.uuid4()}").json()["code"] == "credit_note_not_found"
    assert api.get(f"{URL}/nope").status_code == 404


def test_void(api, invoice):
    note = make_credit_note(invoice=invoice, items=[(fee_of(invoice), "10.00")])

    voided = api.put(f"{URL}/{note.pk}/void")

    assert voided.status_code == 200
    assert {
        k: voided.json()["credit_note"][k] for k in ("credit_status", "balance_amount_cents", "credit_amount_cents")
    } == {
        "credit_status": "voided",
        "balance_amount_cents": 0,
        "credit_amount_cents": 1200,
    }
    again = api.put(f"{URL}/{note.pk}/void")
    assert (again.status_code, again.json()["code"]) == (405, "no_voidable_amount")
    assert api.put(f"{URL}/{uuid.uuid4()}/void").json()["code"] == "credit_note_not_found"
    assert InvoiceEvent.objects.filter(kind="credit_note_voided", actor="api:test").count() == 1


def test_estimate(api, invoice):
    fee_id = str(fee_of(invoice).pk)
    answer = api.post(
        f"{URL}/estimate",
        {"credit_note": {"invoice_id": str(invoice.pk), "items": [{"fee_id": fee_id, "amount_cents": 5000}]}},
    )

    assert answer.status_code == 200, answer.json()
    estimate = answer.json()["estimated_credit_note"]
    # 50.00 + 10.00 VAT creditable; of the 60.00 paid, all 60.00 refundable.
    assert {
        k: estimate[k] for k in ("max_creditable_amount_cents", "max_refundable_amount_cents", "taxes_amount_cents")
    } == {
        "max_creditable_amount_cents": 6000,
        "max_refundable_amount_cents": 6000,
        "taxes_amount_cents": 1000,
    }
    assert estimate["items"] == [{"lago_fee_id": fee_id, "amount_cents": 5000}]
    vat = tax("vat_20", "20")
    assert estimate["applied_taxes"] == [
        {
            "lago_tax_id": str(vat.pk),
            "tax_name": vat.name,
            "tax_code": "vat_20",
            "tax_rate": 20.0,
            "tax_description": None,
            "amount_cents": 1000,
            "amount_currency": "USD",
            "base_amount_cents": 5000,
        }
    ]
    assert (estimate["precise_taxes_amount_cents"], estimate["precise_coupons_adjustment_amount_cents"]) == (
        "1000",
        "0",
    )
    too_much = api.post(
        f"{URL}/estimate",
        {"credit_note": {"invoice_id": str(invoice.pk), "items": [{"fee_id": fee_id, "amount_cents": 10001}]}},
    )
    assert too_much.json()["error_details"] == {"amount_cents": ["higher_than_remaining_fee_amount"]}
    assert not CreditNote.objects.exists()


def test_download_answers_a_signed_link_to_the_pdf(api, invoice):
    note = make_credit_note(invoice=invoice, items=[(fee_of(invoice), "10.00")])

    answer = api.post(f"{URL}/{note.pk}/download")

    assert answer.status_code == 200
    file_url = answer.json()["credit_note"]["file_url"]
    assert file_url.startswith("http://testserver/")
    document = api.get(file_url.removeprefix("http://testserver"))
    assert document.status_code == 200
    assert b"".join(document.streaming_content).startswith(b"%PDF")


def test_list_queries_do_not_grow_with_notes(api):
    customer = make_customer(external_id="cn_many")
    vat = tax("vat_20", "20")

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api.get(URL, {"external_customer_id": "cn_many"}).status_code == 200
        return len(queries)

    make_credit_note(invoice=make_invoice(customer=customer, fees=[{"amount": "10.00", "taxes": [vat]}]))
    count()  # the API key's first use of the minute writes last_used_at
    one = count()
    for _ in range(4):
        make_credit_note(
            invoice=make_invoice(customer=customer, fees=[{"amount": "10.00", "taxes": [vat]}, {"amount": "5.00"}])
        )
    assert count() == one


def test_update_records_a_refund_made_by_hand(api):
    # 100.00 paid in full by bank transfer; 30.00 of it refunded through a credit note.
    paid = make_invoice(fees=[{"amount": "100.00"}], paid="100.00")
    note = make_credit_note(
        invoice=paid, items=[(fee_of(paid), "30.00")], credit_amount=Decimal("0"), refund_amount=Decimal("30.00")
    )
    assert note.refund_status == "pending"

    failed = api.put(f"{URL}/{note.pk}", {"credit_note": {"refund_status": "failed"}})
    assert (failed.status_code, failed.json()["credit_note"]["refund_status"]) == (200, "failed")
    done = api.put(f"{URL}/{note.pk}", {"credit_note": {"refund_status": "succeeded"}})
    assert (done.status_code, done.json()["credit_note"]["refund_status"]) == (200, "succeeded")
    note.refresh_from_db()
    assert note.refunded_at is not None
    # Succeeded is final.
    again = api.put(f"{URL}/{note.pk}", {"credit_note": {"refund_status": "failed"}})
    assert (again.status_code, again.json()["code"]) == (405, "invalid_refund_status")
    assert list(
        InvoiceEvent.objects.filter(credit_note_id=note.pk, actor="api:test")
        .order_by("id")
        .values_list("kind", flat=True)
    ) == ["credit_note_refund_failed", "credit_note_refund_succeeded"]


def test_update_refuses_bad_input(api, invoice):
    credit_only = make_credit_note(invoice=invoice, items=[(fee_of(invoice), "10.00")])

    bad = api.put(f"{URL}/{credit_only.pk}", {"credit_note": {"refund_status": "refunded"}})
    assert (bad.status_code, bad.json()["error_details"]) == (422, {"refund_status": ["value_is_invalid"]})
    nothing_to_refund = api.put(f"{URL}/{credit_only.pk}", {"credit_note": {"refund_status": "succeeded"}})
    assert (nothing_to_refund.status_code, nothing_to_refund.json()["error_details"]) == (
        422,
        {"refund_status": ["no_refund"]},
    )
    assert api.put(f"{URL}/{credit_only.pk}", {"refund_status": "succeeded"}).status_code == 400
    assert api.put(f"{URL}/{uuid.uuid4()}", {"credit_note": {"refund_status": "failed"}}).status_code == 404
