"""Less owed: a late unique-count `remove`. January: users a, b and c at 5.00 each = 15.00 (+20%
VAT = 18.00). A `remove` of c dated January 20 arrives in February: the period recomputed is 2
users = 10.00, so 5.00 (+ 1.00 VAT = 6.00) is credited on the original, reason order_change."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from invoicing.corrections.models import Correction, CorrectionStatus
from invoicing.corrections.rerate import correction_issue
from invoicing.credit_notes import credit_note_create, credit_notes_available
from invoicing.models import CreditNote, Invoice, InvoiceEvent, InvoiceType
from invoicing.services import invoices_finalize_due
from tests.factories.invoicing import bill, only_invoice, subscribe, utc
from tests.factories.metrics import make_events
from tests.factories.plans import make_plan, make_tax, metric

from .conftest import rerate, set_policy

pytestmark = pytest.mark.django_db

D = Decimal


def _users(subscription, rows):
    make_events(
        {
            "external_subscription_id": subscription.external_id,
            "code": "users",
            "timestamp": utc(2024, 1, day, 12),
            "properties": {"user": user, **({"operation_type": "remove"} if remove else {})},
        }
        for day, user, remove in rows
    )


@pytest.fixture
def january():
    make_tax(code="vat_20", rate="20", applied_to_organization=True)
    users = metric("users", aggregation_type="unique_count_agg", field_name="user")
    plan = make_plan(
        amount_cents=0,
        charges=[{"billable_metric_id": str(users.pk), "charge_model": "standard", "properties": {"amount": "5"}}],
    )
    subscription = subscribe(plan=plan)
    _users(subscription, [(3, "a", False), (4, "b", False), (5, "c", False)])
    original = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    assert original.total_amount == D("18.00")
    return subscription, original


def test_a_late_remove_is_credited_on_the_original(january):
    set_policy("correct")
    subscription, original = january
    _users(subscription, [(20, "c", True)])
    summary = rerate()
    assert summary.credit_notes == 1 and summary.corrections == 0, summary
    note = CreditNote.objects.get(invoice=original)
    assert note.reason == "order_change"
    assert note.sub_total_excluding_taxes_amount == D("5.00")
    assert note.taxes_amount == D("1.00")
    assert note.total_amount == D("6.00")
    assert not Invoice.objects.filter(invoice_type=InvoiceType.CORRECTION).exists()
    original.refresh_from_db()
    assert original.total_amount == D("18.00")
    assert rerate().credit_notes == 0  # rerun: nothing more


def test_review_keeps_the_decrease_as_a_draft_until_finance_issues_it(january):
    set_policy("review")
    subscription, original = january
    _users(subscription, [(20, "c", True)])
    rerate()
    correction = Correction.objects.get()
    assert correction.status == CorrectionStatus.DRAFT and correction.invoice_id is None
    assert correction.decreases[0]["amount"] == "5.00"
    # A draft credit note (Lago's CreditNote::STATUS draft, app/models/credit_note.rb): priced,
    # but no number, no credit to consume, and no finalized note exists.
    draft = CreditNote.all_objects.get()
    assert correction.credit_note_id == draft.pk
    assert (draft.status, draft.number, draft.sequential_id) == ("draft", None, None)
    assert (draft.total_amount, draft.balance_amount, draft.credit_status) == (D("6.00"), D("0"), None)
    assert not CreditNote.objects.exists()
    assert credit_notes_available(customer=original.customer, currency="USD") == D("0")
    correction_issue(correction=correction, actor="test")
    correction.refresh_from_db()
    assert correction.status == CorrectionStatus.ISSUED
    note = correction.credit_note
    assert note.pk == draft.pk and note.status == "finalized"
    assert note.number == f"{original.number}-CN001"
    assert (note.total_amount, note.balance_amount, note.credit_status) == (D("6.00"), D("6.00"), "available")
    assert credit_notes_available(customer=original.customer, currency="USD") == D("6.00")


def _draft_decrease(subscription, rows=((20, "c", True),)):
    set_policy("review")
    _users(subscription, list(rows))
    rerate()
    return CreditNote.all_objects.get(status="draft")


def test_a_draft_decrease_takes_no_number_and_no_balance_until_finalized_through_the_api(api, january):
    subscription, original = january
    draft = _draft_decrease(subscription)
    # Excluded from what the customer holds and from Lago's lists; shown by id and on ?status=draft.
    assert api.get("/api/v1/credit_notes").json()["credit_notes"] == []
    listed = api.get("/api/v1/credit_notes", {"status": "draft"}).json()["credit_notes"]
    assert [n["lago_id"] for n in listed] == [str(draft.pk)]
    shown = api.get(f"/api/v1/credit_notes/{draft.pk}").json()["credit_note"]
    assert (shown["status"], shown["number"], shown["total_amount_cents"]) == ("draft", None, 600)
    assert shown["corrected_invoice_id"] == str(original.pk)
    assert shown["balance_amount_cents"] == 0
    # Finance credits 2.00 of the same fee by hand meanwhile: that note takes CN001 (the draft
    # consumed no number), and the draft still fits in what is left of the fee (15.00 - 2.00).
    fee = original.fees.get(fee_type="charge")
    manual = credit_note_create(invoice=original, reason="other", items=[(fee, D("2.00"))], actor="test")
    assert manual.number == f"{original.number}-CN001"
    assert credit_notes_available(customer=original.customer, currency="USD") == D("2.40")  # 2.00 + 20%

    answer = api.put(f"/api/v1/credit_notes/{draft.pk}/finalize")
    assert answer.status_code == 200, answer.content
    body = answer.json()["credit_note"]
    assert body["status"] == "finalized" and body["number"] == f"{original.number}-CN002"
    assert body["sequential_id"] == 2
    assert (body["total_amount_cents"], body["balance_amount_cents"], body["credit_status"]) == (600, 600, "available")
    assert body["reason"] == "order_change"
    assert body["corrected_invoice_id"] == str(original.pk)
    assert Correction.objects.get().status == CorrectionStatus.ISSUED
    assert credit_notes_available(customer=original.customer, currency="USD") == D("8.40")
    # Again: answered unchanged; a note that is no correction draft cannot be discarded.
    again = api.put(f"/api/v1/credit_notes/{draft.pk}/finalize")
    assert again.status_code == 200 and again.json()["credit_note"]["number"] == body["number"]
    refused = api.delete(f"/api/v1/credit_notes/{draft.pk}?reason=x")
    assert refused.status_code == 405 and refused.json()["code"] == "is_not_correction_draft"
    assert api.put(f"/api/v1/credit_notes/{uuid.uuid4()}/finalize").status_code == 404
    original.refresh_from_db()
    assert original.total_amount == D("18.00")


def test_the_hourly_finalization_leaves_a_draft_decrease_alone(january):
    subscription, _ = january
    draft = _draft_decrease(subscription)
    invoices_finalize_due(now=utc(2024, 6, 1))
    draft.refresh_from_db()
    assert draft.status == "draft" and draft.number is None
    assert Correction.objects.get().status == CorrectionStatus.DRAFT


def test_late_events_while_the_draft_waits_refresh_its_credit_note(january):
    subscription, original = january
    first = _draft_decrease(subscription)
    # b is removed too: the period recomputed is 1 user = 5.00, so 10.00 (+ 2.00 VAT) is owed back.
    _users(subscription, [(21, "b", True)])
    rerate()
    assert not CreditNote.all_objects.filter(pk=first.pk).exists()
    refreshed = CreditNote.all_objects.get()
    assert refreshed.status == "draft" and refreshed.total_amount == D("12.00")
    corrections = {c.status: c for c in Correction.objects.all()}
    assert set(corrections) == {CorrectionStatus.SUPERSEDED, CorrectionStatus.DRAFT}
    assert corrections[CorrectionStatus.DRAFT].credit_note_id == refreshed.pk
    assert corrections[CorrectionStatus.SUPERSEDED].credit_note_id is None
    assert corrections[CorrectionStatus.DRAFT].events_count == 2


def test_discarding_a_draft_decrease_through_the_api_handles_its_events(api, january):
    subscription, original = january
    draft = _draft_decrease(subscription)
    missing = api.delete(f"/api/v1/credit_notes/{draft.pk}")
    assert missing.status_code == 422 and missing.json()["error_details"] == {"reason": ["value_is_mandatory"]}
    answer = api.delete(f"/api/v1/credit_notes/{draft.pk}", {"credit_note": {"reason": "c left in February"}})
    assert answer.status_code == 200, answer.content
    assert answer.json()["credit_note"] == {"lago_id": str(draft.pk), "status": "discarded"}
    assert not CreditNote.all_objects.exists()
    correction = Correction.objects.get()
    assert correction.status == CorrectionStatus.DISCARDED and correction.discard_reason == "c left in February"
    audit = InvoiceEvent.objects.get(invoice=original, kind="correction_discarded")
    assert audit.payload["credit_note_id"] == str(draft.pk)
    assert audit.payload["decreases"][0]["amount"] == "5.00"
    # Handled: the next run proposes nothing.
    assert rerate().credit_notes == 0
    assert not CreditNote.all_objects.exists()
