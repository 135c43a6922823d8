"""Manual payments through Lago's API: partial, exact and over-payments, validation, lists."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from invoicing.models import InvoiceStatus
from payments import services
from payments.models import Payment, PaymentProviderName, PaymentStatus
from tests.factories.customers import make_customer
from tests.factories.payments import make_finalized_invoice, make_stripe_payment

pytestmark = pytest.mark.django_db


def post_payment(api, **payment):
    return api.post("/api/v1/payments", {"payment": payment}, format="json")


def test_partial_then_full_payment(api):
    invoice = make_finalized_invoice(total="100.00", currency="EUR")

    response = post_payment(
        api, invoice_id=str(invoice.pk), amount_cents=4000, reference="WIRE-1", paid_at="2025-02-20"
    )

    assert response.status_code == 200, response.json()
    body = response.json()["payment"]
    assert body["amount_cents"] == 4000
    assert body["amount_currency"] == "EUR"
    assert body["invoice_ids"] == [str(invoice.pk)]
    assert body["invoice_numbers"] == [invoice.number]
    assert body["type"] == "manual"
    assert body["payment_status"] == "succeeded"
    assert body["reference"] == "WIRE-1"
    assert body["paid_at"] == "2025-02-20T00:00:00Z"
    invoice.refresh_from_db()
    assert invoice.total_paid_amount == Decimal("40.00")
    assert invoice.total_due_amount == Decimal("60.00")
    assert invoice.payment_status == "pending"

    response = post_payment(api, invoice_id=str(invoice.pk), amount_cents=6000, reference="WIRE-2")

    assert response.status_code == 200
    invoice.refresh_from_db()
    assert invoice.total_paid_amount == Decimal("100.00")
    assert invoice.total_due_amount == Decimal(0)
    assert invoice.payment_status == "succeeded"


def test_payment_above_what_is_due_is_refused(api):
    invoice = make_finalized_invoice(total="100.00")
    assert post_payment(api, invoice_id=str(invoice.pk), amount_cents=9000, reference="A").status_code == 200

    response = post_payment(api, invoice_id=str(invoice.pk), amount_cents=1001, reference="B")

    assert response.status_code == 422
    assert response.json() == {
        "status": 422,
        "error": "Unprocessable Entity",
        "code": "validation_errors",
        "error_details": {"amount_cents": ["greater_than"]},
    }
    invoice.refresh_from_db()
    assert invoice.total_paid_amount == Decimal("90.00")
    assert Payment.objects.filter(invoice=invoice).count() == 1


def test_zero_decimal_currency_amounts(api):
    invoice = make_finalized_invoice(total="1500", currency="JPY")

    response = post_payment(api, invoice_id=str(invoice.pk), amount_cents=1500, reference="JP-1")

    assert response.status_code == 200
    assert response.json()["payment"]["amount_cents"] == 1500
    invoice.refresh_from_db()
    assert invoice.total_paid_amount == Decimal("1500")
    assert invoice.payment_status == "succeeded"


@pytest.mark.parametrize(
    ("payload", "details"),
    [
        ({"amount_cents": 100}, {"reference": ["value_is_mandatory"]}),
        ({"amount_cents": 0, "reference": "R"}, {"amount_cents": ["value_is_invalid"]}),
        ({"amount_cents": "100", "reference": "R"}, {"amount_cents": ["value_is_invalid"]}),
        ({"amount_cents": 10.5, "reference": "R"}, {"amount_cents": ["value_is_invalid"]}),
        ({"amount_cents": 100, "reference": "R" * 41}, {"reference": ["value_is_invalid"]}),
        ({"amount_cents": 100, "reference": "R", "paid_at": "yesterday"}, {"paid_at": ["invalid_date"]}),
        ({"amount_cents": 100, "reference": "R", "paid_at": "2025-02-30"}, {"paid_at": ["invalid_date"]}),
    ],
)
def test_invalid_input_is_422(api, payload, details):
    invoice = make_finalized_invoice(total="10.00")

    response = post_payment(api, invoice_id=str(invoice.pk), **payload)

    assert response.status_code == 422
    assert response.json()["error_details"] == details
    assert not Payment.objects.exists()


def test_missing_envelope_is_400(api):
    response = api.post("/api/v1/payments", {"invoice_id": "x"}, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize("invoice_id", ["not-a-uuid", "8c3f1f4e-6a7c-4c1e-9d8e-2b0f6f1e0a11"])
def test_unknown_invoice_is_404(api, invoice_id):
    response = post_payment(api, invoice_id=invoice_id, amount_cents=100, reference="R")
    assert response.status_code == 404
    assert response.json()["code"] == "invoice_not_found"


@pytest.mark.parametrize("status", [InvoiceStatus.DRAFT, InvoiceStatus.VOIDED])
def test_only_finalized_invoices_take_payments(api, status):
    invoice = make_finalized_invoice(total="10.00", status=status)

    response = post_payment(api, invoice_id=str(invoice.pk), amount_cents=100, reference="R")

    assert response.status_code == 422
    assert response.json()["error_details"] == {"invoice_id": ["invalid_status"]}


def test_requires_authentication(anon_api):
    assert anon_api.get("/api/v1/payments").status_code == 401


def test_list_filters_and_pagination(api):
    alice = make_customer(external_id="alice")
    bob = make_customer(external_id="bob")
    alice_invoice = make_finalized_invoice(customer=alice, total="100.00")
    bob_invoice = make_finalized_invoice(customer=bob, total="100.00")
    for cents in (1000, 2000, 3000):
        services.payment_create_manual(invoice_id=alice_invoice.pk, amount_cents=cents, reference=f"A{cents}")
    services.payment_create_manual(invoice_id=bob_invoice.pk, amount_cents=500, reference="B")

    everything = api.get("/api/v1/payments").json()
    by_customer = api.get("/api/v1/payments", {"external_customer_id": "alice", "per_page": 2}).json()
    page_two = api.get("/api/v1/payments", {"external_customer_id": "alice", "per_page": 2, "page": 2}).json()
    by_invoice = api.get("/api/v1/payments", {"invoice_id": str(bob_invoice.pk)}).json()

    assert everything["meta"]["total_count"] == 4
    assert [p["amount_cents"] for p in by_customer["payments"]] == [3000, 2000]
    assert by_customer["meta"] == {
        "current_page": 1,
        "next_page": 2,
        "prev_page": None,
        "total_pages": 2,
        "total_count": 3,
    }
    assert [p["amount_cents"] for p in page_two["payments"]] == [1000]
    assert [p["external_customer_id"] for p in by_invoice["payments"]] == ["bob"]
    customer_list = api.get("/api/v1/customers/bob/payments").json()
    assert [p["amount_cents"] for p in customer_list["payments"]] == [500]


def test_list_with_invalid_invoice_id_is_422(api):
    response = api.get("/api/v1/payments", {"invoice_id": "nope"})
    assert response.status_code == 422
    assert response.json()["error_details"] == {"invoice_id": ["value_is_invalid"]}


def test_list_answers_in_a_fixed_number_of_queries(api, django_assert_max_num_queries):
    invoice = make_finalized_invoice(total="1000.00")
    for cents in range(1, 21):
        services.payment_create_manual(invoice_id=invoice.pk, amount_cents=cents, reference=f"R{cents}")
    # authentication, count, page (payments joined to invoices and customers)
    with django_assert_max_num_queries(4):
        response = api.get("/api/v1/payments")
    assert len(response.json()["payments"]) == 20


def test_get_one(api):
    invoice = make_finalized_invoice(total="10.00")
    payment = services.payment_create_manual(
        invoice_id=invoice.pk, amount_cents=250, reference="R", paid_at=datetime(2025, 3, 1, 12, tzinfo=UTC)
    )

    response = api.get(f"/api/v1/payments/{payment.pk}")

    assert response.status_code == 200
    body = response.json()["payment"]
    assert body["lago_id"] == str(payment.pk)
    assert body["amount_cents"] == 250
    assert body["paid_at"] == "2025-03-01T12:00:00Z"
    assert api.get("/api/v1/payments/8c3f1f4e-6a7c-4c1e-9d8e-2b0f6f1e0a11").json()["code"] == "payment_not_found"
    assert api.get("/api/v1/payments/garbage").status_code == 404


def test_lago_client_reads_a_payment(api):
    """The response satisfies lago-python-client's PaymentResponse model."""
    from lago_python_client.models.payment import PaymentResponse

    invoice = make_finalized_invoice(total="10.00")
    response = post_payment(api, invoice_id=str(invoice.pk), amount_cents=100, reference="R")

    parsed = PaymentResponse.parse_obj(response.json()["payment"])

    assert parsed.amount_cents == 100
    assert parsed.invoice_ids == [str(invoice.pk)]


def test_manual_payment_after_a_failed_stripe_attempt_settles_the_invoice(api):
    """A person records the transfer of a customer whose card was declined."""
    customer = make_customer(external_id="declined", payment_provider="stripe")
    invoice = make_finalized_invoice(customer=customer, total="50.00")
    make_stripe_payment(invoice=invoice, status=PaymentStatus.FAILED, failure_code="card_declined")
    services._invoice_payment_state_refresh(invoice)
    invoice.refresh_from_db()
    assert invoice.payment_status == "failed"

    post_payment(api, invoice_id=str(invoice.pk), amount_cents=5000, reference="WIRE")

    invoice.refresh_from_db()
    assert invoice.payment_status == "succeeded"
    assert list(invoice.payments.values_list("provider", "status").order_by("created_at")) == [
        (PaymentProviderName.STRIPE, PaymentStatus.FAILED),
        (PaymentProviderName.MANUAL, PaymentStatus.SUCCEEDED),
    ]
