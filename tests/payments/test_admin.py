"""The payments admin: a read-only ledger with filters, invoices to collect with the mark-paid and
retry actions, customers' Stripe setup with the attach-card action."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry

from payments import services
from payments.models import PaymentStatus
from tests.factories.customers import make_customer
from tests.factories.payments import make_finalized_invoice, make_stripe_payment

pytestmark = pytest.mark.django_db


def test_payments_list_filters_and_read_only_detail(admin_client):
    invoice = make_finalized_invoice(total="10.00")
    manual = services.payment_create_manual(invoice_id=invoice.pk, amount_cents=300, reference="WIRE-77")
    make_stripe_payment(invoice=invoice, provider_payment_id="pi_visible", failure_code="card_declined")

    manual_only = admin_client.get("/admin/payments/payment/", {"provider__exact": "manual"})
    failed_only = admin_client.get("/admin/payments/payment/", {"status__exact": "failed"})
    detail = admin_client.get(f"/admin/payments/payment/{manual.pk}/change/")

    assert manual_only.status_code == 200
    assert manual_only.context["cl"].result_count == 1
    assert failed_only.context["cl"].result_count == 1
    assert "card_declined" in failed_only.content.decode()
    assert detail.status_code == 200
    assert "WIRE-77" in detail.content.decode()
    assert f"/admin/payments/invoicetocollect/{invoice.pk}/change/" in detail.content.decode()
    assert 'name="_save"' not in detail.content.decode()  # nothing to edit
    assert admin_client.get("/admin/payments/payment/add/").status_code == 403
    of_invoice = admin_client.get("/admin/payments/payment/", {"invoice__id__exact": str(invoice.pk)})
    assert of_invoice.context["cl"].result_count == 2


def test_mark_paid_action_records_the_amount_due(admin_client):
    invoice = make_finalized_invoice(total="80.00")
    services.payment_create_manual(invoice_id=invoice.pk, amount_cents=3000, reference="PART")
    url = "/admin/payments/invoicetocollect/"

    form_page = admin_client.post(url, {"action": "mark_paid", "_selected_action": [str(invoice.pk)]})
    done = admin_client.post(
        url, {"action": "mark_paid", "_selected_action": [str(invoice.pk)], "apply": "1", "reference": "CHQ-12"}
    )

    assert form_page.status_code == 200
    assert "Record manual payments" in form_page.content.decode()
    assert done.status_code == 302
    invoice.refresh_from_db()
    assert invoice.payment_status == "succeeded"
    assert invoice.total_paid_amount == Decimal("80.00")
    last = invoice.payments.get(reference="CHQ-12")
    assert last.amount == Decimal("50.00")
    assert LogEntry.objects.filter(object_id=str(invoice.pk)).exists()


def test_invoices_to_collect_lists_issued_invoices(admin_client):
    make_finalized_invoice(total="10.00", number="TOL-FINAL")
    make_finalized_invoice(total="10.00", number="TOL-DRAFT", status="draft")

    page = admin_client.get("/admin/payments/invoicetocollect/").content.decode()

    assert "TOL-FINAL" in page
    assert "TOL-DRAFT" not in page


@pytest.mark.stripe
def test_attach_card_and_retry_actions(admin_client, stripe_api, django_capture_on_commit_callbacks):
    customer = make_customer(external_id="admin-cus", payment_provider="stripe")
    invoice = make_finalized_invoice(customer=customer, total="15.00")
    make_stripe_payment(invoice=invoice, status=PaymentStatus.FAILED, failure_code="no_payment_method")

    sync = admin_client.post(
        "/admin/payments/customerpaymentsetup/",
        {"action": "sync_stripe_customer", "_selected_action": [str(customer.pk)]},
    )
    attach = admin_client.post(
        "/admin/payments/customerpaymentsetup/",
        {
            "action": "attach_payment_method",
            "_selected_action": [str(customer.pk)],
            "apply": "1",
            "payment_method_id": "pm_card_visa",
        },
    )
    setup_page = admin_client.get("/admin/payments/customerpaymentsetup/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        retried = admin_client.post(
            "/admin/payments/invoicetocollect/",
            {"action": "retry_payment", "_selected_action": [str(invoice.pk)]},
        )

    assert (sync.status_code, attach.status_code, retried.status_code) == (302, 302, 302)
    customer.refresh_from_db()
    assert customer.provider_customer_id.startswith("cus_")
    assert "•••• 4242" in setup_page
    invoice.refresh_from_db()
    assert invoice.payment_status == "succeeded"
    assert list(invoice.payments.order_by("attempt").values_list("trigger", "status")) == [
        ("finalization", "failed"),
        ("admin", "succeeded"),
    ]
