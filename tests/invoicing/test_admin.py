"""The finance console: invoice list filters and search, read-only issued documents (no edit, no
delete, no delete_selected), inlines, the PDF link, and actions that call the billing services
and report per invoice."""

from __future__ import annotations

from datetime import date

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User

from invoicing.models import Invoice, InvoiceEvent, InvoiceStatus
from tests.factories.customers import make_customer

from .api.conftest import make_invoice

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/invoicing/invoice/"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _count(admin_client, **params) -> int:
    answer = admin_client.get(CHANGELIST, params)
    assert answer.status_code == 200
    return answer.context["cl"].result_count


def test_filters_and_search(admin_client):
    make_invoice(customer=make_customer(external_id="acme", name="Acme Corp", currency="USD"))
    make_invoice(status=InvoiceStatus.DRAFT, issuing_date=date(2025, 3, 1))
    make_invoice(payment_status="succeeded", payment_overdue=True, invoice_type="one_off")

    assert _count(admin_client) == 3
    assert _count(admin_client, status__exact="draft") == 1
    assert _count(admin_client, payment_status__exact="succeeded") == 1
    assert _count(admin_client, invoice_type__exact="one_off") == 1
    assert _count(admin_client, payment_overdue__exact="1") == 1
    assert _count(admin_client, currency__exact="USD") == 3
    assert _count(admin_client, issuing_date__gte="2025-03-01", issuing_date__lt="2025-04-01") == 1
    assert _count(admin_client, q="acme") == 1
    assert _count(admin_client, q="Acme Corp") == 1
    assert _count(admin_client, q="TOL-DRAFT") == 1


def test_issued_invoice_is_read_only_with_inlines_and_pdf_link(admin_client):
    from invoicing import pdf

    invoice = make_invoice()
    pdf.invoice_pdf_render(invoice=invoice)

    page = admin_client.get(f"{CHANGELIST}{invoice.pk}/change/")
    html = page.content.decode()

    assert page.status_code == 200
    assert 'name="_save"' not in html
    assert "API calls" in html  # fee inline line name
    assert "vat_20" in html  # applied taxes inline
    assert "pdf_generated" in html  # history inline
    assert "/api/v1/documents/" in html
    assert admin_client.get(f"{CHANGELIST}{invoice.pk}/delete/").status_code == 403
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    actions = [choice[0] for choice in admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices]
    assert "delete_selected" not in actions
    assert {"finalize", "refresh", "void", "regenerate_pdf"} <= set(actions)
    # A POSTed edit changes nothing either.
    admin_client.post(f"{CHANGELIST}{invoice.pk}/change/", {"number": "HACKED"})
    assert Invoice.objects.get(pk=invoice.pk).number == invoice.number


def _act(admin_client, action: str, *invoices: Invoice):
    return admin_client.post(
        CHANGELIST, {"action": action, "_selected_action": [str(i.pk) for i in invoices]}, follow=True
    )


def _messages(answer) -> list[str]:
    return [str(message) for message in answer.context["messages"]]


def test_void_reports_each_invoice(admin_client):
    open_invoice = make_invoice()
    paid = make_invoice(payment_status="succeeded")

    answer = _act(admin_client, "void", open_invoice, paid)

    assert Invoice.objects.get(pk=open_invoice.pk).status == InvoiceStatus.VOIDED
    assert Invoice.objects.get(pk=paid.pk).status == InvoiceStatus.FINALIZED
    assert f"{open_invoice.number}: voided" in _messages(answer)
    assert f"{paid.number}: not_voidable (not voided)" in _messages(answer)
    assert InvoiceEvent.objects.get(invoice=open_invoice, kind="voided").actor == "admin:admin"
    assert LogEntry.objects.filter(object_id=str(open_invoice.pk), change_message="Voided").exists()


def test_finalize_and_regenerate_pdf(admin_client, django_capture_on_commit_callbacks):
    draft = make_invoice(status=InvoiceStatus.DRAFT)
    issued = make_invoice()

    with django_capture_on_commit_callbacks(execute=True):
        finalized = _act(admin_client, "finalize", draft)
    rendered = _act(admin_client, "regenerate_pdf", issued, make_invoice(status=InvoiceStatus.DRAFT))

    draft.refresh_from_db()
    assert draft.status == InvoiceStatus.FINALIZED and draft.number != "TOL-DRAFT"
    assert f"{draft.number}: finalized" in _messages(finalized)
    assert draft.file  # rendered after commit by the service
    assert f"{issued.number}: PDF rendered" in _messages(rendered)
    assert "TOL-DRAFT: is_draft (not PDF rendered)" in _messages(rendered)
    assert Invoice.objects.get(pk=issued.pk).file


def test_actions_need_the_change_permission(client):
    invoice = make_invoice()
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_invoice", content_type__app_label="invoicing"))
    client.force_login(viewer)

    page = client.get(CHANGELIST)
    answer = client.post(CHANGELIST, {"action": "void", "_selected_action": [str(invoice.pk)]})

    assert page.status_code == 200
    assert 'value="void"' not in page.content.decode()  # no billing action offered to a viewer
    assert answer.status_code in (200, 302)
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.FINALIZED


def test_fees_and_credit_notes_are_read_only(admin_client):
    invoice = make_invoice()
    fee = invoice.fees.first()

    fees = admin_client.get("/admin/invoicing/fee/", {"q": invoice.number})
    one = admin_client.get(f"/admin/invoicing/fee/{fee.pk}/change/")

    assert fees.context["cl"].result_count == 3
    assert 'name="_save"' not in one.content.decode()
    assert admin_client.get(f"/admin/invoicing/fee/{fee.pk}/delete/").status_code == 403
    assert admin_client.get("/admin/invoicing/creditnote/").status_code == 200
    assert admin_client.get("/admin/invoicing/creditnote/add/").status_code == 403


def test_fee_without_an_invoice_is_listed(admin_client):
    # A pay-in-advance fee of a charge that is not invoiceable has no invoice (mypy found the
    # fee list's invoice column dereferencing it).
    fee = make_invoice().fees.first()
    fee.pk = None
    fee.invoice = None
    fee.save()

    answer = admin_client.get("/admin/invoicing/fee/")

    assert answer.status_code == 200
    assert answer.context["cl"].result_count == 4
