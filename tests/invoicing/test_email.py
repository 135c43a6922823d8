"""Documents by e-mail, sent to a real SMTP server on loopback (aiosmtpd) and parsed on arrival:
the issue e-mail (organization's email_settings), Lago's resend_email rules, refusals and retries."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from customers.models import Organization
from invoicing import services
from invoicing.mail.models import DocumentEmail, EmailStatus
from invoicing.mail.services import document_emails_due
from invoicing.mail.tasks import send_due_document_emails
from invoicing.models import InvoiceEvent, InvoiceStatus, InvoiceType
from tests.factories.credit_notes import make_credit_note, make_invoice
from tests.factories.customers import make_customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(organization):
    organization.name = "Acme Billing"
    organization.email = "billing@acme.test"
    organization.email_settings = ["invoice.finalized", "credit_note.created", "payment_receipt.created"]
    organization.invoice_footer = "Acme Billing SAS, VAT FR00123456789"
    organization.save()
    return organization


_buyers = itertools.count(1)


def draft(customer_email: str = "ap@buyer.test, cfo@buyer.test"):
    customer = make_customer(external_id=f"buyer_{next(_buyers)}", email=customer_email, name="Buyer")
    return make_invoice(
        customer=customer,
        status=InvoiceStatus.DRAFT,
        invoice_type=InvoiceType.ADD_ON,
        fees=[{"amount": "120.00", "name": "Setup"}],
    )


def finalize(invoice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return services.invoice_finalize(invoice=invoice, actor="test")


def kinds(invoice) -> list[str]:
    return list(InvoiceEvent.objects.filter(invoice=invoice, kind__startswith="email_").values_list("kind", flat=True))


def test_finalized_invoice_is_emailed_with_its_pdf(acme, smtp_server, django_capture_on_commit_callbacks):
    invoice = finalize(draft(), django_capture_on_commit_callbacks)

    assert len(smtp_server.received) == 1
    got = smtp_server.received[0]
    assert sorted(got.rcpt_tos) == ["ap@buyer.test", "cfo@buyer.test"]
    assert got.subject == f"Your invoice from Acme Billing #{invoice.number}"
    assert got.header("From") == "Tollgate Billing <billing@tollgate.test>"
    assert got.header("Reply-To") == "billing@acme.test"
    invoice.refresh_from_db()
    with invoice.file.open("rb") as handle:
        pdf_bytes = handle.read()
    assert got.attachments() == [(f"invoice-{invoice.number}.pdf", pdf_bytes)]
    assert pdf_bytes.startswith(b"%PDF")
    assert "USD 120.00" in got.body("plain")
    assert "Acme Billing SAS, VAT FR00123456789" in got.body("html")
    row = DocumentEmail.objects.get()
    assert (row.status, row.reason, row.attempts, row.refused) == (EmailStatus.SENT, "issued", 1, {})
    assert kinds(invoice) == ["email_queued", "email_sent"]


def test_setting_off_sends_nothing_and_resend_is_refused_as_lago(
    organization, smtp_server, api, django_capture_on_commit_callbacks
):
    organization.email = "billing@acme.test"
    organization.email_settings = ["credit_note.created"]
    organization.save()
    invoice = finalize(draft(), django_capture_on_commit_callbacks)

    response = api.post(f"/api/v1/invoices/{invoice.pk}/resend_email", {}, format="json")

    # lago-api app/services/emails/resend_service.rb: not_allowed_failure!(code: "email_settings_disabled")
    assert response.status_code == 405
    assert response.json() == {"status": 405, "error": "Method Not Allowed", "code": "email_settings_disabled"}
    assert smtp_server.received == []
    assert DocumentEmail.objects.count() == 0


def test_resend_with_to_cc_bcc(acme, smtp_server, api, django_capture_on_commit_callbacks):
    invoice = finalize(draft(), django_capture_on_commit_callbacks)
    smtp_server.received.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/v1/invoices/{invoice.pk}/resend_email",
            {"to": ["finance@buyer.test"], "cc": ["boss@buyer.test"], "bcc": ["audit@acme.test"]},
            format="json",
        )

    assert response.status_code == 200
    got = smtp_server.received[0]
    assert sorted(got.rcpt_tos) == ["audit@acme.test", "boss@buyer.test", "finance@buyer.test"]
    assert got.header("To") == "finance@buyer.test"
    assert got.header("Cc") == "boss@buyer.test"
    assert got.header("Bcc") == ""  # never shown to the other recipients
    assert DocumentEmail.objects.filter(reason="resend").get().bcc == ["audit@acme.test"]


def test_resend_to_a_bad_address_is_422_and_sends_nothing(acme, smtp_server, api, django_capture_on_commit_callbacks):
    invoice = finalize(draft(), django_capture_on_commit_callbacks)
    before = DocumentEmail.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/v1/invoices/{invoice.pk}/resend_email",
            {"to": ["ok@buyer.test", "not-an-address"], "bcc": ["also bad"]},
            format="json",
        )

    assert response.status_code == 422
    assert response.json()["error_details"] == {
        "to": ["invalid email format: not-an-address"],
        "bcc": ["invalid email format: also bad"],
    }
    assert DocumentEmail.objects.count() == before
    assert len(smtp_server.received) == 1  # the issue e-mail only


def test_organization_without_email_and_draft(organization, smtp_server, api, django_capture_on_commit_callbacks):
    organization.email_settings = ["invoice.finalized"]
    organization.save()
    invoice = finalize(draft(), django_capture_on_commit_callbacks)
    assert smtp_server.received == []  # no Reply-To to give: Lago's mailer sends nothing either

    response = api.post(f"/api/v1/invoices/{invoice.pk}/resend_email", {}, format="json")
    assert response.status_code == 422
    assert response.json()["error_details"] == {"billing_entity": ["must have email configured"]}

    organization.email = "billing@acme.test"
    organization.save()
    still_draft = draft()
    response = api.post(f"/api/v1/invoices/{still_draft.pk}/resend_email", {}, format="json")
    assert response.status_code == 405
    assert response.json()["code"] == "invoice_not_finalized"
    assert api.post("/api/v1/invoices/not-a-uuid/resend_email", {}, format="json").status_code == 404


def test_a_refused_recipient_is_recorded_the_others_receive_it(acme, smtp_server, django_capture_on_commit_callbacks):
    smtp_server.handler.refuse = {"cfo@buyer.test"}

    invoice = finalize(draft(), django_capture_on_commit_callbacks)

    assert [got.rcpt_tos for got in smtp_server.received] == [["ap@buyer.test"]]
    row = DocumentEmail.objects.get()
    assert row.status == EmailStatus.SENT
    assert row.refused == {"cfo@buyer.test": "550 5.1.1 No such user here"}
    sent = InvoiceEvent.objects.get(invoice=invoice, kind="email_sent")
    assert sent.payload["refused"] == {"cfo@buyer.test": "550 5.1.1 No such user here"}


def test_every_recipient_refused_fails_without_touching_the_invoice(
    acme, smtp_server, django_capture_on_commit_callbacks
):
    smtp_server.handler.refuse = {"ap@buyer.test", "cfo@buyer.test"}

    invoice = finalize(draft(), django_capture_on_commit_callbacks)

    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.FINALIZED
    row = DocumentEmail.objects.get()
    assert row.status == EmailStatus.FAILED
    assert set(row.refused) == {"ap@buyer.test", "cfo@buyer.test"}
    assert kinds(invoice) == ["email_queued", "email_failed"]
    assert smtp_server.received == []


def test_temporary_failure_is_retried_by_the_sweep(acme, smtp_server, django_capture_on_commit_callbacks, settings):
    settings.TOLLGATE_EMAIL_RETRY_DELAYS = [60, 300]
    smtp_server.handler.fail_next = 1

    invoice = finalize(draft(), django_capture_on_commit_callbacks)

    row = DocumentEmail.objects.get()
    assert (row.status, row.attempts) == (EmailStatus.PENDING, 1)
    assert row.last_error.startswith("451")
    assert document_emails_due(now=timezone.now()) == []  # its retry is 60 s away
    assert document_emails_due(now=timezone.now() + timedelta(seconds=61)) == [row.pk]
    DocumentEmail.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))

    assert send_due_document_emails() == {"due": 1}

    row.refresh_from_db()
    assert (row.status, row.attempts) == (EmailStatus.SENT, 2)
    assert len(smtp_server.received) == 1
    assert kinds(invoice) == ["email_queued", "email_retrying", "email_sent"]


def test_server_down_is_retried_never_raised(acme, settings, django_capture_on_commit_callbacks):
    from tests.smtp_server import free_port

    settings.EMAIL_BACKEND = "billing_project.mail.RecordingSMTPBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listens there

    invoice = finalize(draft(), django_capture_on_commit_callbacks)

    assert Organization.current().email == "billing@acme.test"
    row = DocumentEmail.objects.get(invoice=invoice)
    assert (row.status, row.attempts) == (EmailStatus.PENDING, 1)
    assert "ConnectionRefusedError" in row.last_error


def test_issue_email_is_written_once_per_document(acme, smtp_server, django_capture_on_commit_callbacks):
    from invoicing.mail.receivers import on_invoice_finalized

    invoice = finalize(draft(), django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        on_invoice_finalized(None, invoice_id=invoice.pk)  # the announcement, once more

    assert DocumentEmail.objects.filter(reason="issued").count() == 1
    assert len(smtp_server.received) == 1


def test_french_organization_and_credit_note(acme, smtp_server, api, django_capture_on_commit_callbacks):
    acme.document_locale = "fr"
    acme.save()
    invoice = finalize(draft("ap@buyer.test"), django_capture_on_commit_callbacks)
    assert smtp_server.received[0].subject == f"Votre facture de Acme Billing n° {invoice.number}"

    with django_capture_on_commit_callbacks(execute=True):
        note = make_credit_note(invoice=invoice, items=[(invoice.fees.get(), "20.00")])
        response = api.post(f"/api/v1/credit_notes/{note.pk}/resend_email", {"cc": ["cc@buyer.test"]}, format="json")

    assert response.status_code == 200
    got = smtp_server.received[-1]
    assert got.subject == f"Votre avoir de Acme Billing n° {note.number}"
    assert sorted(got.rcpt_tos) == ["ap@buyer.test", "cc@buyer.test"]
    note.refresh_from_db()
    with note.file.open("rb") as handle:
        assert got.attachments() == [(f"credit_note-{note.number}.pdf", handle.read())]


def test_email_settings_through_the_organization_api(api, organization):
    response = api.put(
        "/api/v1/organizations",
        {"organization": {"email_settings": ["invoice.finalized"], "billing_configuration": {"document_locale": "fr"}}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()["organization"]
    assert body["email_settings"] == ["invoice.finalized"]
    assert body["billing_configuration"]["document_locale"] == "fr"

    bad = api.put("/api/v1/organizations", {"organization": {"email_settings": ["invoice.sent"]}}, format="json")
    assert bad.status_code == 422
    assert bad.json()["error_details"] == {"email_settings": ["value_is_invalid"]}


def test_the_console_shows_the_messages_on_the_invoice(
    acme, smtp_server, admin_client, django_capture_on_commit_callbacks
):
    smtp_server.handler.refuse = {"cfo@buyer.test"}
    invoice = finalize(draft(), django_capture_on_commit_callbacks)

    page = admin_client.get(f"/admin/invoicing/invoice/{invoice.pk}/change/")
    outbox = admin_client.get("/admin/invoicing/documentemail/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "email_queued" in html and "email_sent" in html
    assert "550 5.1.1 No such user here" in html  # the refusal, on the invoice's history
    assert outbox.status_code == 200
    assert "ap@buyer.test" in outbox.content.decode()


def test_email_settings_in_the_organization_admin(admin_client, organization):
    page = admin_client.get("/admin/customers/organization/1/change/").content.decode()
    assert 'value="payment_receipt.created"' in page

    from customers.admin import OrganizationForm

    data = {field: getattr(organization, field) for field in OrganizationForm.Meta.fields}
    data.update(email_settings=["invoice.finalized", "credit_note.created"], document_locale="fr", webhook_url="")
    answer = admin_client.post("/admin/customers/organization/1/change/", data)

    assert answer.status_code == 302, answer.content.decode()[:3000]
    organization.refresh_from_db()
    assert (organization.email_settings, organization.document_locale) == (
        ["invoice.finalized", "credit_note.created"],
        "fr",
    )
