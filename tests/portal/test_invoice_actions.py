"""Lago's smaller invoice actions through the API: delete a draft, retry a failed generation,
lose a dispute, download_pdf, retry_payment without a provider (200 + invoice.payment_failure),
fees without an invoice (PUT/DELETE) and credit-note metadata. Each refusal in Lago's shape.

Semantics from getlago/lago-api: app/services/invoices/delete_service.rb (draft only,
`not_deletable`), invoices/retry_service.rb (failed only, `invalid_status`),
invoices/lose_dispute_service.rb + models/invoice.rb (finalized or voided, first date kept,
overdue cleared, no longer voidable), invoices/payments/retry_service.rb (no provider: 200 and
`customer_must_have_payment_provider`), fees/update_service.rb and fees/destroy_service.rb
(`invoiced_fee`), controllers/api/v1/credit_notes/metadata_controller.rb.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from invoicing.models import Credit, Fee, FeeType, Invoice, InvoiceEvent, InvoiceStatus, InvoiceSubscription
from plans.models import AppliedCoupon
from tests.factories.credit_notes import make_credit_note
from tests.factories.customers import make_customer
from tests.factories.invoicing import bill, events, subscribe, utc
from tests.factories.payments import make_finalized_invoice
from tests.factories.plans import make_plan, metric, standard_charge
from tests.invoicing.api.conftest import make_invoice
from tests.webhooks.conftest import register
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


# --- DELETE /invoices/{id} ---------------------------------------------------------------------


def test_deleting_a_draft_gives_its_coupon_back_and_hides_it(api):
    draft = make_invoice(status=InvoiceStatus.DRAFT)
    applied = AppliedCoupon.objects.get(credits__invoice=draft)
    # The factory's coupon (10.00 once) credited the draft 10.00; nothing of it is left to use.
    AppliedCoupon.objects.filter(pk=applied.pk).update(amount_remaining=Decimal("0"))

    response = api.delete(f"/api/v1/invoices/{draft.pk}")

    assert response.status_code == 200, response.content
    body = response.json()["invoice"]
    assert (body["lago_id"], body["status"], body["fees"]) == (str(draft.pk), "deleted", [])
    draft.refresh_from_db()
    assert draft.status == InvoiceStatus.DELETED
    assert not Fee.objects.filter(invoice=draft).exists()
    assert not Credit.objects.filter(invoice=draft).exists()
    applied.refresh_from_db()
    assert applied.amount_remaining == Decimal("10.00")
    # The period stays claimed: the run will not bill it a second time.
    assert InvoiceSubscription.objects.filter(invoice=draft).count() == 1
    assert InvoiceEvent.objects.filter(invoice=draft, kind="deleted").count() == 1
    assert api.get(f"/api/v1/invoices/{draft.pk}").status_code == 404
    assert str(draft.pk) not in [row["lago_id"] for row in api.get("/api/v1/invoices").json()["invoices"]]
    again = api.delete(f"/api/v1/invoices/{draft.pk}")
    assert (again.status_code, again.json()["code"]) == (404, "invoice_not_found")


def test_a_deleted_drafts_period_is_not_billed_again(api, organization):
    organization.invoice_grace_period = 3
    organization.save()
    subscription = subscribe(plan=make_plan(amount_cents=1000, charges=[standard_charge()]))
    events(subscription, [utc(2024, 1, 10)])
    draft = Invoice.objects.get(pk=bill(utc(2024, 2, 1, 0, 10)).invoice_ids[0])

    assert api.delete(f"/api/v1/invoices/{draft.pk}").status_code == 200

    assert bill(utc(2024, 2, 1, 1, 10)).created == 0
    assert Invoice.objects.filter(customer=subscription.customer).exclude(status=InvoiceStatus.DELETED).count() == 0


def test_only_a_draft_can_be_deleted(api):
    issued = make_invoice()

    response = api.delete(f"/api/v1/invoices/{issued.pk}")

    assert response.status_code == 405
    assert response.json() == {"status": 405, "error": "Method Not Allowed", "code": "not_deletable"}
    issued.refresh_from_db()
    assert issued.status == InvoiceStatus.FINALIZED
    assert Fee.objects.filter(invoice=issued).count() == 3


def test_a_draft_delete_hook_can_refuse(api):
    from invoicing import invoice_actions
    from invoicing.errors import NotAllowedError

    draft = make_invoice(status=InvoiceStatus.DRAFT)

    def refuse(invoice: Invoice) -> None:
        raise NotAllowedError("correction_has_lineage")

    invoice_actions.register_draft_delete_hook(refuse)
    try:
        response = api.delete(f"/api/v1/invoices/{draft.pk}")
    finally:
        invoice_actions._DRAFT_DELETE_HOOKS.remove(refuse)

    assert (response.status_code, response.json()["code"]) == (405, "correction_has_lineage")
    draft.refresh_from_db()
    assert draft.status == InvoiceStatus.DRAFT
    assert Fee.objects.filter(invoice=draft).count() == 3


# --- POST /invoices/{id}/retry -----------------------------------------------------------------


def test_retry_generates_a_failed_invoice_again_and_finalizes_it(api):
    failed = make_invoice(status=InvoiceStatus.DRAFT)
    Invoice.objects.filter(pk=failed.pk).update(status=InvoiceStatus.FAILED)
    # The factory writes the coupon's 10.00 credit without consuming the coupon: consume it.
    AppliedCoupon.objects.filter(credits__invoice=failed).update(amount_remaining=Decimal("0"))

    response = api.post(f"/api/v1/invoices/{failed.pk}/retry")

    assert response.status_code == 200, response.content
    body = response.json()["invoice"]
    assert body["status"] == "finalized"
    assert body["number"] != "TOL-DRAFT"
    # Recomputed from its subscription-period by the pipeline: January 2025 on "startup" with no
    # events is the subscription fee alone, 49.00, less the coupon's 10.00 (no default tax).
    assert (body["fees_amount_cents"], body["coupons_amount_cents"], body["total_amount_cents"]) == (4900, 1000, 3900)
    assert InvoiceEvent.objects.filter(invoice=failed, kind="generation_retried").count() == 1


def test_retry_refuses_an_invoice_that_did_not_fail(api):
    response = api.post(f"/api/v1/invoices/{make_invoice().pk}/retry")
    assert (response.status_code, response.json()["code"]) == (405, "invalid_status")


# --- POST /invoices/{id}/lose_dispute ----------------------------------------------------------


def test_losing_a_dispute_keeps_the_first_date_and_clears_overdue(api):
    invoice = make_finalized_invoice(payment_overdue=True)

    first = api.post(f"/api/v1/invoices/{invoice.pk}/lose_dispute")
    second = api.put(f"/api/v1/invoices/{invoice.pk}/lose_dispute")

    assert first.status_code == 200, first.content
    lost_at = first.json()["invoice"]["payment_dispute_lost_at"]
    assert lost_at is not None
    assert first.json()["invoice"]["payment_overdue"] is False
    assert second.json()["invoice"]["payment_dispute_lost_at"] == lost_at
    assert InvoiceEvent.objects.filter(invoice=invoice, kind="payment_dispute_lost").count() == 1
    # Lago's voidable?: an invoice whose dispute was lost is not voidable.
    void = api.post(f"/api/v1/invoices/{invoice.pk}/void")
    assert (void.status_code, void.json()["code"]) == (405, "not_voidable")


def test_a_draft_cannot_lose_a_dispute(api):
    draft = make_invoice(status=InvoiceStatus.DRAFT)
    response = api.post(f"/api/v1/invoices/{draft.pk}/lose_dispute")
    assert (response.status_code, response.json()["code"]) == (405, "not_disputable")


def test_a_lost_dispute_is_never_flagged_overdue():
    from payments import services as payment_services

    invoice = make_finalized_invoice(
        issuing_date=date(2025, 1, 1), payment_due_date=date(2025, 1, 31), payment_dispute_lost_at=utc(2025, 1, 5)
    )
    assert payment_services.invoices_overdue_refresh(today=date(2025, 3, 1)) == (0, 0)
    invoice.refresh_from_db()
    assert invoice.payment_overdue is False


# --- POST /invoices/{id}/download_pdf ----------------------------------------------------------


def test_download_pdf_answers_the_invoice_with_its_file_url(api):
    invoice = make_invoice()

    response = api.post(f"/api/v1/invoices/{invoice.pk}/download_pdf")

    assert response.status_code == 200, response.content
    file_url = response.json()["invoice"]["file_url"]
    assert file_url.startswith("http://testserver/api/v1/documents/")
    pdf = api.get(file_url.removeprefix("http://testserver"))
    assert pdf.status_code == 200
    assert b"".join(pdf.streaming_content).startswith(b"%PDF")


# --- POST /invoices/{id}/retry_payment without a provider -------------------------------------


def test_retry_payment_without_a_provider_is_200_and_announces_the_failure(
    api, receiver, django_capture_on_commit_callbacks
):
    register(api, receiver.url)
    invoice = make_finalized_invoice(customer=make_customer(external_id="no-psp", payment_provider=""))

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/invoices/{invoice.pk}/retry_payment")

    assert response.status_code == 200
    assert receiver.types() == ["invoice.payment_failure"]
    body = receiver.requests[0].json
    assert body["object_type"] == "payment_provider_invoice_payment_error"
    error = body["payment_provider_invoice_payment_error"]
    assert (error["lago_invoice_id"], error["external_customer_id"]) == (str(invoice.pk), "no-psp")
    assert error["provider_error"]["error_code"] == "customer_must_have_payment_provider"
    assert not invoice.payments.exists()


def test_retry_payment_of_a_draft_is_still_refused(api):
    draft = make_invoice(status=InvoiceStatus.DRAFT, customer=make_customer(external_id="no-psp-draft"))
    response = api.post(f"/api/v1/invoices/{draft.pk}/retry_payment")
    assert (response.status_code, response.json()["code"]) == (405, "invalid_status")
    assert WebhookDelivery.objects.count() == 0


# --- PUT / DELETE /fees/{id} -------------------------------------------------------------------


def _fee_without_invoice() -> Fee:
    charge = {**standard_charge(amount="1"), "pay_in_advance": True, "invoiceable": False}
    charge["billable_metric_id"] = str(metric("api_calls").pk)
    subscription = subscribe(plan=make_plan(code="advance", amount_cents=0, charges=[charge]), start=utc(2025, 1, 1))
    return Fee.objects.create(
        subscription=subscription,
        charge=subscription.plan.charges.get(),
        fee_type=FeeType.CHARGE,
        currency="USD",
        units=1,
        amount=Decimal("1.00"),
        precise_amount=Decimal("1"),
        pay_in_advance=True,
        pay_in_advance_event_transaction_id="tx_1",
    )


def test_a_fee_without_an_invoice_takes_the_payment_status_it_is_given(api):
    fee = _fee_without_invoice()

    failed = api.put(f"/api/v1/fees/{fee.pk}", {"fee": {"payment_status": "failed"}})
    succeeded = api.put(f"/api/v1/fees/{fee.pk}", {"fee": {"payment_status": "succeeded"}})

    assert failed.status_code == 200, failed.content
    assert failed.json()["fee"]["payment_status"] == "failed"
    assert failed.json()["fee"]["failed_at"] is not None
    body = succeeded.json()["fee"]
    assert (body["payment_status"], body["failed_at"]) == ("succeeded", None)
    assert body["succeeded_at"] is not None
    listed = api.get("/api/v1/fees", {"payment_status": "succeeded"}).json()["fees"]
    assert [row["lago_id"] for row in listed] == [str(fee.pk)]
    bad = api.put(f"/api/v1/fees/{fee.pk}", {"fee": {"payment_status": "paid"}})
    assert (bad.status_code, bad.json()["code"]) == (422, "validation_errors")


def test_a_fee_without_an_invoice_can_be_deleted_once(api):
    fee = _fee_without_invoice()

    response = api.delete(f"/api/v1/fees/{fee.pk}")

    assert response.status_code == 200, response.content
    assert response.json()["fee"]["lago_id"] == str(fee.pk)
    assert api.get(f"/api/v1/fees/{fee.pk}").status_code == 404
    assert api.delete(f"/api/v1/fees/{fee.pk}").status_code == 404
    fee.refresh_from_db()
    assert fee.deleted_at is not None


def test_an_invoiced_fee_is_neither_updated_nor_deleted(api):
    fee = Fee.objects.filter(invoice=make_invoice()).first()
    assert fee is not None
    for response in (
        api.put(f"/api/v1/fees/{fee.pk}", {"fee": {"payment_status": "succeeded"}}),
        api.delete(f"/api/v1/fees/{fee.pk}"),
    ):
        assert (response.status_code, response.json()["code"]) == (405, "invoiced_fee")
    assert Fee.objects.filter(pk=fee.pk, deleted_at__isnull=True).exists()


# --- /credit_notes/{id}/metadata ---------------------------------------------------------------


def test_credit_note_metadata_replace_merge_and_delete(api):
    note = make_credit_note(invoice=make_invoice())
    path = f"/api/v1/credit_notes/{note.pk}/metadata"

    assert api.post(path, {"metadata": {"a": "1", "b": None}}).json() == {"metadata": {"a": "1", "b": None}}
    assert api.patch(path, {"metadata": {"c": 3}}).json() == {"metadata": {"a": "1", "b": None, "c": "3"}}
    assert api.delete(f"{path}/a").json() == {"metadata": {"b": None, "c": "3"}}
    assert api.get(f"/api/v1/credit_notes/{note.pk}").json()["credit_note"]["metadata"] == {"b": None, "c": "3"}
    assert api.delete(path).json() == {"metadata": None}
    missing = api.delete(f"{path}/a")
    assert (missing.status_code, missing.json()["code"]) == (404, "metadata_not_found")
    bad = api.post(path, {"metadata": "x"})
    assert bad.status_code == 400
