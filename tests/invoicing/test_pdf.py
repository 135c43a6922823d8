"""Invoice and credit note PDFs (read back with pypdf) and their signed, expiring links."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from django.core import signing
from django.core.management import call_command
from pypdf import PdfReader

from customers.models import Organization
from invoicing import documents, pdf
from invoicing.models import CreditNote, CreditNoteItem, Invoice, InvoiceEvent, InvoiceStatus
from tests.factories.customers import make_customer

from .api.conftest import make_invoice

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _text(data: bytes) -> str:
    # Whitespace-normalised: a table cell may wrap its text over two lines.
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split())


def _pdf_of(document: Invoice | CreditNote) -> str:
    document.refresh_from_db()
    with document.file.open("rb") as handle:
        return _text(handle.read())


def test_invoice_pdf_shows_number_lines_taxes_and_totals(organization):
    # The issuer as frozen at finalization (the conftest snapshot), over the live organization.
    Organization.objects.filter(pk=1).update(legal_name="Renamed since", city="Lyon")
    invoice = make_invoice(customer=make_customer(external_id="acme", name="Acme Corp", currency="USD"))

    pdf.invoice_pdf_render(invoice=invoice, actor="test")
    text = _pdf_of(invoice)

    assert invoice.number in text
    for expected in (
        "Tollgate SAS",  # issuer (frozen)
        "Lyon",  # live details the snapshot did not hold
        "Acme Corp Ltd",  # the frozen customer (snapshot), not the live name
        "Paris",
        "Feb 1, 2025",  # issuing date
        "Feb 16, 2025",  # due date
        "Startup",  # subscription line
        "API calls",  # graduated line and its tiers
        "Tier 1,001 and above",
        "USD 0.002",
        "USD 49.00",
        "USD 1.00",
        "USD 3.13",  # 12.5 GB x 0.25 = 3.125, rounded half-up once
        "Coupon Welcome",
        "-USD 10.00",
        "VAT (20% on USD 43.13)",
        "USD 8.63",
        "USD 53.13",  # subtotal
        "USD 51.76",  # total and amount due
        "Amount due",
        "Thank you. Bank: FR76",
    ):
        assert expected in text, expected
    assert InvoiceEvent.objects.filter(invoice=invoice, kind="pdf_generated", actor="test").count() == 1


def test_rerendering_replaces_the_file_and_changes_nothing_else(media, django_capture_on_commit_callbacks):
    invoice = make_invoice()
    before = Invoice.objects.filter(pk=invoice.pk).values().get()

    pdf.invoice_pdf_render(invoice=invoice)
    first = Invoice.objects.get(pk=invoice.pk).file.name
    with django_capture_on_commit_callbacks(execute=True):
        pdf.invoice_pdf_render(invoice=invoice)
    after = Invoice.objects.filter(pk=invoice.pk).values().get()

    changed = {key for key in before if before[key] != after[key]}
    assert changed == {"file"}
    assert sorted(p.name for p in (media / "invoices").iterdir()) == [after["file"].split("/")[-1]]
    assert first != after["file"]  # the first file was dropped once the second one was stored


def test_jpy_and_bhd_amounts_keep_their_minor_units():
    assert documents.format_money(Decimal("5000"), "JPY") == "JPY 5,000"
    assert documents.format_money(Decimal("1.2345"), "BHD") == "BHD 1.235"
    assert documents.format_money(Decimal("-10"), "USD") == "-USD 10.00"
    assert documents.format_precise(Decimal("0.002"), "USD") == "USD 0.002"
    assert documents.format_precise(Decimal("49"), "USD") == "USD 49.00"


def test_draft_and_voided_are_marked():
    draft = make_invoice(status=InvoiceStatus.DRAFT)
    voided = make_invoice(status=InvoiceStatus.VOIDED)
    pdf.invoice_pdf_render(invoice=draft)
    pdf.invoice_pdf_render(invoice=voided)

    assert "DRAFT" in _pdf_of(draft)
    voided_text = _pdf_of(voided)
    assert "VOIDED" in voided_text
    assert "USD 0.00" in voided_text  # nothing is due on a voided invoice


def test_credit_note_pdf():
    invoice = make_invoice()
    fee = invoice.fees.get(fee_type="subscription")
    note = CreditNote.objects.create(
        invoice=invoice,
        customer=invoice.customer,
        sequential_id=1,
        number=f"{invoice.number}-CN1",
        reason="product_unsatisfactory",
        credit_status="available",
        currency="USD",
        issuing_date=date(2025, 2, 10),
        credit_amount=Decimal("12.00"),
        balance_amount=Decimal("12.00"),
        sub_total_excluding_taxes_amount=Decimal("10.00"),
        taxes_amount=Decimal("2.00"),
        taxes_rate=20,
        total_amount=Decimal("12.00"),
    )
    CreditNoteItem.objects.create(credit_note=note, fee=fee, amount=Decimal("10.00"), precise_amount=Decimal("10"))

    pdf.credit_note_pdf_render(credit_note=note)
    text = _pdf_of(note)

    for expected in (note.number, invoice.number, "Product unsatisfactory", "Startup", "USD 10.00", "USD 12.00"):
        assert expected in text, expected
    assert InvoiceEvent.objects.filter(credit_note=note, kind="credit_note_pdf_generated").exists()


# --------------------------------------------------------------------------------------------
# Signed links


def _path(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


def test_signed_link_serves_the_pdf_without_an_api_key(client, settings):
    settings.TOLLGATE_PUBLIC_URL = "https://billing.example.com"
    invoice = make_invoice()
    pdf.invoice_pdf_render(invoice=invoice)

    url = pdf.signed_file_url(obj=invoice)
    answer = client.get(_path(url))

    assert url.startswith("https://billing.example.com/api/v1/documents/")
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/pdf"
    assert f'filename="{invoice.number}.pdf"' in answer["Content-Disposition"]
    assert invoice.number in _text(b"".join(answer.streaming_content))


def test_tampered_link_is_403(client):
    invoice = make_invoice()
    pdf.invoice_pdf_render(invoice=invoice)
    path = _path(pdf.signed_file_url(obj=invoice))
    # Another document's payload under this link's timestamp and signature.
    other_payload = pdf.sign_document(make_invoice()).split(":")[0]
    payload, stamp_and_signature = path.rsplit("/", 1)[1].split(":", 1)
    forged = f"/api/v1/documents/{other_payload}:{stamp_and_signature}"
    assert other_payload != payload

    for bad in (path[:-2] + ("AA" if not path.endswith("AA") else "BB"), path + "x", "/api/v1/documents/x", forged):
        answer = client.get(bad)
        assert answer.status_code == 403, bad
        assert answer.json() == {"status": 403, "error": "Forbidden", "code": "invalid_signature"}


def test_expired_link_is_403(client, settings):
    invoice = make_invoice()
    pdf.invoice_pdf_render(invoice=invoice)
    path = _path(pdf.signed_file_url(obj=invoice))
    settings.TOLLGATE_PDF_LINK_MAX_AGE = -1  # every link is already older than that

    answer = client.get(path)

    assert answer.status_code == 403
    assert answer.json()["code"] == "expired_link"


def test_link_to_a_document_without_file_is_404(client):
    invoice = make_invoice()
    token = pdf.sign_document(invoice)

    assert client.get(f"/api/v1/documents/{token}").status_code == 404
    assert client.post(f"/api/v1/documents/{token}").status_code == 405


def test_a_token_signed_for_something_else_is_refused(client):
    token = signing.TimestampSigner(salt=pdf.SIGNING_SALT).sign_object({"k": "user", "id": "1"})
    other_salt = signing.TimestampSigner(salt="other").sign_object({"k": "invoice", "id": "1"})

    assert client.get(f"/api/v1/documents/{token}").status_code == 403
    assert client.get(f"/api/v1/documents/{other_salt}").status_code == 403


# --------------------------------------------------------------------------------------------
# regenerate_pdfs


def test_regenerate_pdfs_missing_and_one(capsys):
    with_file = make_invoice()
    pdf.invoice_pdf_render(invoice=with_file)
    missing = make_invoice()
    draft = make_invoice(status=InvoiceStatus.DRAFT)

    call_command("regenerate_pdfs", "--missing")
    missing.refresh_from_db()
    draft.refresh_from_db()
    assert missing.file and not draft.file  # drafts have no document yet
    assert InvoiceEvent.objects.filter(invoice=with_file, kind="pdf_generated").count() == 1

    call_command("regenerate_pdfs", "--invoice", str(with_file.pk))
    assert InvoiceEvent.objects.filter(invoice=with_file, kind="pdf_generated").count() == 2
    assert "1 rendered" in capsys.readouterr().out
