"""Payment receipts: one per succeeded payment (manual, partial, Stripe), numbered per customer
without gaps in Lago's format, with a PDF behind a signed link, e-mailed and resent, listed through
the API and lago-python-client."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.db import transaction
from pypdf import PdfReader

from payments import services
from payments.models import Payment, PaymentReceipt, PaymentStatus
from payments.providers import ChargeOutcome
from payments.receipts import receipt_number
from tests.concurrency import race
from tests.factories.customers import make_customer
from tests.factories.payments import make_finalized_invoice, make_stripe_payment

pytestmark = pytest.mark.django_db


def pay(invoice, cents: int, reference: str) -> Payment:
    return services.payment_create_manual(invoice_id=invoice.pk, amount_cents=cents, reference=reference)


def test_receipt_number_format():
    # lago-api db/structure.sql (set_payment_receipt_number): "<customer slug>-RCPT-" and the
    # customer's counter on at least 6 digits; the slug is "<prefix>-<customer seq, 3 digits>".
    assert receipt_number(prefix="TOL", customer_sequence=7, receipt_sequence=1) == "TOL-007-RCPT-000001"
    assert receipt_number(prefix="ACME", customer_sequence=1234, receipt_sequence=1234567) == ("ACME-1234-RCPT-1234567")


def test_partial_and_manual_payments_each_get_the_next_number(organization, django_capture_on_commit_callbacks):
    customer = make_customer(external_id="rcpt_1")
    first_invoice = make_finalized_invoice(customer=customer, total="100.00")
    second_invoice = make_finalized_invoice(customer=customer, total="50.00")

    with django_capture_on_commit_callbacks(execute=True):
        a = pay(first_invoice, 4000, "WIRE-1")  # partial: 40 of 100
        b = pay(first_invoice, 6000, "WIRE-2")  # the rest
        c = pay(second_invoice, 5000, "WIRE-3")

    customer.refresh_from_db()
    slug = f"TOL-{customer.sequential_id:03d}"
    assert [p.receipt.number for p in (a, b, c)] == [
        f"{slug}-RCPT-000001",
        f"{slug}-RCPT-000002",
        f"{slug}-RCPT-000003",
    ]
    receipt = PaymentReceipt.objects.get(payment=a)
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(receipt.file.read())).pages)
    assert receipt.number in text
    assert "USD 40.00" in text  # amount paid
    assert "USD 60.00" in text  # still due once this payment was in (not today's 0.00)
    other = make_customer(external_id="rcpt_2")
    with django_capture_on_commit_callbacks(execute=True):
        d = pay(make_finalized_invoice(customer=other, total="10.00"), 1000, "CASH")
    other.refresh_from_db()
    assert d.receipt.number == f"TOL-{other.sequential_id:03d}-RCPT-000001"


def test_stripe_success_gets_a_receipt_a_failure_does_not(organization):
    invoice = make_finalized_invoice(customer=make_customer(external_id="rcpt_stripe", payment_provider="stripe"))
    failed = make_stripe_payment(invoice=invoice, attempt=1, status=PaymentStatus.PENDING, idempotency_key="k1")
    services.payment_apply_outcome(
        payment_id=failed.pk, outcome=ChargeOutcome(PaymentStatus.FAILED, failure_code="card_declined")
    )
    assert not PaymentReceipt.objects.exists()
    succeeded = make_stripe_payment(invoice=invoice, attempt=2, status=PaymentStatus.PENDING, idempotency_key="k2")

    services.payment_apply_outcome(payment_id=succeeded.pk, outcome=ChargeOutcome(PaymentStatus.SUCCEEDED, "pi_1"))
    services.payment_apply_outcome(payment_id=succeeded.pk, outcome=ChargeOutcome(PaymentStatus.SUCCEEDED, "pi_1"))

    assert list(PaymentReceipt.objects.values_list("payment_id", flat=True)) == [succeeded.pk]
    assert invoice.events.filter(kind="payment_receipt_created").count() == 1


def test_a_rolled_back_payment_gives_its_number_back(organization):
    customer = make_customer(external_id="rcpt_rollback")
    invoice = make_finalized_invoice(customer=customer, total="100.00")
    with pytest.raises(RuntimeError), transaction.atomic():
        pay(invoice, 1000, "LOST")
        raise RuntimeError("the request failed after the payment")
    kept = pay(invoice, 1000, "KEPT")
    assert kept.receipt.number.endswith("-RCPT-000001")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_numbers_stay_gapless_when_payments_race(organization):
    customer = make_customer(external_id="rcpt_race")
    invoices = [make_finalized_invoice(customer=customer, total="10.00") for _ in range(4)]
    queue = list(invoices)

    def one_payment() -> str:
        invoice = queue.pop()
        return pay(invoice, 1000, f"R-{invoice.pk.hex[:6]}").receipt.number

    numbers = race(one_payment, count=4)

    assert all(isinstance(n, str) for n in numbers), numbers
    assert sorted(int(n.rsplit("-", 1)[1]) for n in numbers) == [1, 2, 3, 4]
    assert PaymentReceipt.objects.filter(customer=customer).count() == 4


def test_receipt_emailed_when_enabled_and_resent(organization, smtp_server, api, django_capture_on_commit_callbacks):
    organization.email = "billing@acme.test"
    organization.email_settings = ["payment_receipt.created"]
    organization.save()
    invoice = make_finalized_invoice(customer=make_customer(external_id="rcpt_mail", email="ap@buyer.test"))

    with django_capture_on_commit_callbacks(execute=True):
        payment = pay(invoice, 2500, "WIRE-9")
    receipt = payment.receipt
    receipt.refresh_from_db()

    got = smtp_server.received[0]
    assert got.rcpt_tos == ["ap@buyer.test"]
    assert got.subject == f"Your receipt from {organization.name} #{receipt.number}"
    with receipt.file.open("rb") as handle:
        assert got.attachments() == [(f"receipt-{receipt.number}.pdf", handle.read())]
    assert "USD 25.00" in got.body("plain")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/v1/payment_receipts/{receipt.pk}/resend_email", {"to": ["books@buyer.test"]}, format="json"
        )
    assert response.status_code == 200
    assert smtp_server.received[-1].rcpt_tos == ["books@buyer.test"]
    assert invoice.events.filter(kind="email_sent").count() == 2

    organization.email_settings = []
    organization.save()
    off = api.post(f"/api/v1/payment_receipts/{receipt.pk}/resend_email", {}, format="json")
    assert off.status_code == 405
    assert off.json()["code"] == "email_settings_disabled"


def test_receipts_api_and_signed_file(api, organization, django_capture_on_commit_callbacks, client):
    invoice = make_finalized_invoice(customer=make_customer(external_id="rcpt_api"), total="80.00")
    other = make_finalized_invoice(customer=make_customer(external_id="rcpt_api2"), total="80.00")
    with django_capture_on_commit_callbacks(execute=True):
        payment = pay(invoice, 8000, "FULL")
        pay(other, 100, "PART")

    listed = api.get("/api/v1/payment_receipts", {"invoice_id": str(invoice.pk)}).json()
    assert listed["meta"]["total_count"] == 1
    body = listed["payment_receipts"][0]
    assert body["number"] == payment.receipt.number
    assert body["payment"]["lago_id"] == str(payment.pk)
    assert body["payment"]["amount_cents"] == 8000
    assert api.get("/api/v1/payment_receipts").json()["meta"]["total_count"] == 2
    assert api.get(f"/api/v1/payment_receipts/{payment.receipt.pk}").json()["payment_receipt"]["lago_id"] == str(
        payment.receipt.pk
    )
    assert api.get("/api/v1/payment_receipts/nope").json()["code"] == "payment_receipt_not_found"
    assert api.get("/api/v1/payment_receipts", {"invoice_id": "x"}).status_code == 422

    pdf = client.get(body["file_url"].replace("http://testserver", ""))
    assert pdf.status_code == 200
    assert b"".join(pdf.streaming_content).startswith(b"%PDF")
    tampered = client.get(body["file_url"].replace("http://testserver", "")[:-2] + "xx")
    assert tampered.status_code == 403


def test_payment_receipt_webhook_type():
    from webhooks.events import webhook_types

    assert "payment_receipt.created" in webhook_types()


@pytest.mark.django_db(transaction=True)
def test_lago_client_reads_receipts(live_server):
    from lago_python_client.client import Client

    from tests.factories.customers import make_api_key

    lago = Client(api_key=make_api_key().raw, api_url=live_server.url)
    invoice = make_finalized_invoice(customer=make_customer(external_id="rcpt_lago"), total="30.00")
    payment = pay(invoice, 1000, "LAGO-RCPT")

    listed = lago.payment_receipts.find_all({"invoice_id": str(invoice.pk)})
    found = lago.payment_receipts.find(str(payment.receipt.pk))

    assert [r.number for r in listed["payment_receipts"]] == [payment.receipt.number]
    assert found.payment.amount_cents == 1000
    assert found.payment.reference == "LAGO-RCPT"
    assert Decimal(found.payment.amount_cents) / 100 == Decimal("10")
