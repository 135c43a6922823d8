"""The console's late-usage pages through the test client, as a Finance Manager: each fee of the
invoice page links to its events; a correction draft is discarded only with a reason (its
events handled, an audit row on the original); a draft decrease is issued from the original's
page; what-if prices the invoice under another plan and saves nothing; a draft credit note (a
lone decrease) is finalized or discarded after a confirmation page; events past the window are
listed as too late."""

from __future__ import annotations

from decimal import Decimal
from importlib import import_module

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from customers.models import Organization
from invoicing.corrections.models import Correction, CorrectionStatus
from invoicing.models import CreditNote, Invoice, InvoiceEvent, InvoiceType
from metrics.models import Event
from tests.factories.invoicing import bill, only_invoice, subscribe, utc
from tests.factories.plans import make_plan, metric

from .conftest import rerate, set_policy, units

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def manager(client):
    from django.apps import apps

    if not Group.objects.filter(name="Finance Manager").exists():
        import_module("payments.migrations.0005_finance_console_groups").create_groups(apps, None)
    user = User.objects.create_user("fm", "fm@tollgate.test", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance Manager"))
    client.force_login(user)
    return client


@pytest.fixture
def with_draft(graduated_plan):
    set_policy("review")
    subscription = subscribe(plan=graduated_plan)
    units(subscription, [50, 30])
    original = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    units(subscription, [40], day=20)
    rerate()
    return original, Invoice.objects.get(invoice_type=InvoiceType.CORRECTION)


def test_each_fee_links_to_its_events(manager, with_draft):
    original, _ = with_draft
    page = manager.get(reverse("admin:invoicing_invoice_change", args=[original.pk])).content.decode()
    fee = original.fees.get(fee_type="charge")
    link = reverse("admin:invoicing_fee_events", args=[fee.pk])
    assert link in page
    assert "Late usage corrections" in page
    events_page = manager.get(link).content.decode()
    assert events_page.count("<tr><td><code>") == 2  # the two January events the fee counted
    assert "80 units from 2 events" in events_page


def test_discard_needs_a_reason_and_leaves_an_audit_row(manager, with_draft):
    original, draft = with_draft
    url = reverse("admin:invoicing_invoice_discard", args=[draft.pk])
    assert manager.post(url, {"reason": ""}).status_code == 200  # the form again, nothing discarded
    assert Invoice.objects.filter(pk=draft.pk).exists()
    answer = manager.post(url, {"reason": "Customer's clock drifted: already settled"})
    assert answer.status_code == 302
    assert not Invoice.objects.filter(pk=draft.pk).exists()
    correction = Correction.objects.get(original_invoice=original)
    assert correction.status == CorrectionStatus.DISCARDED
    audit = InvoiceEvent.objects.get(invoice=original, kind="correction_discarded")
    assert audit.payload["reason"] == "Customer's clock drifted: already settled"
    assert audit.actor == "admin:fm"
    # Handled: the next run proposes nothing.
    rerate()
    assert not Invoice.objects.filter(invoice_type=InvoiceType.CORRECTION).exists()


def test_what_if_prices_under_another_plan_and_saves_nothing(manager, with_draft):
    original, _ = with_draft
    m = metric("units")
    make_plan(
        code="flat_half",
        amount_cents=0,
        charges=[{"billable_metric_id": str(m.pk), "charge_model": "standard", "properties": {"amount": "0.5"}}],
    )
    fees_before = original.fees.count()
    page = manager.post(
        reverse("admin:invoicing_invoice_rerate", args=[original.pk]), {"plan_code": "flat_half"}
    ).content.decode()
    # 120 units stored now (80 + 40 late) x 0.50 = 60.00, + 20% = 72.00.
    assert '<td id="rerate-fees">USD 60.00</td>' in page
    assert '<td id="rerate-total">USD 72.00</td>' in page
    assert original.fees.count() == fees_before


def test_api_rerate_and_discard(api, with_draft):
    original, draft = with_draft
    m = metric("units")
    make_plan(
        code="flat_half",
        amount_cents=0,
        charges=[{"billable_metric_id": str(m.pk), "charge_model": "standard", "properties": {"amount": "0.5"}}],
    )
    answer = api.post(f"/api/v1/invoices/{original.pk}/rerate", {"plan_code": "flat_half"})
    assert answer.status_code == 200, answer.content
    assert answer.json()["rerate"]["fees_amount_cents"] == 6000
    assert answer.json()["rerate"]["total_amount_cents"] == 7200
    assert api.post(f"/api/v1/invoices/{original.pk}/rerate", {"plan_code": "nope"}).status_code == 404
    # DELETE refuses anything but a correction draft, and a missing reason.
    assert api.delete(f"/api/v1/invoices/{original.pk}?reason=x").status_code == 405
    missing = api.delete(f"/api/v1/invoices/{draft.pk}")
    assert missing.status_code == 422 and missing.json()["error_details"] == {"reason": ["value_is_mandatory"]}
    assert api.delete(f"/api/v1/invoices/{draft.pk}?reason=duplicate%20upload").status_code == 200
    assert not Invoice.objects.filter(pk=draft.pk).exists()


def test_finalizing_the_draft_through_the_api_takes_a_number(api, with_draft):
    original, draft = with_draft
    answer = api.put(f"/api/v1/invoices/{draft.pk}/finalize")
    assert answer.status_code == 200, answer.content
    body = answer.json()["invoice"]
    assert body["status"] == "finalized" and "DRAFT" not in body["number"]
    assert body["corrected_invoice_id"] == str(original.pk)
    assert body["total_amount_cents"] == 3600
    assert Correction.objects.get(invoice=draft).status == CorrectionStatus.ISSUED


@pytest.fixture
def with_draft_decrease():
    """Users a, b, c in January at 5.00 (15.00 + 20% = 18.00); c's late `remove` proposes a draft
    credit note of 5.00 + 1.00 VAT under review."""
    from tests.factories.metrics import make_events
    from tests.factories.plans import make_tax

    make_tax(code="vat_20", rate="20", applied_to_organization=True)
    users = metric("users", aggregation_type="unique_count_agg", field_name="user")
    plan = make_plan(
        amount_cents=0,
        charges=[{"billable_metric_id": str(users.pk), "charge_model": "standard", "properties": {"amount": "5"}}],
    )
    subscription = subscribe(plan=plan)

    def users_on(rows):
        make_events(
            {
                "external_subscription_id": subscription.external_id,
                "code": "users",
                "timestamp": utc(2024, 1, day, 12),
                "properties": {"user": user, **({"operation_type": "remove"} if remove else {})},
            }
            for day, user, remove in rows
        )

    users_on([(3, "a", False), (4, "b", False), (5, "c", False)])
    original = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    set_policy("review")
    users_on([(20, "c", True)])
    rerate()
    return original, CreditNote.all_objects.get(status="draft")


def test_a_draft_credit_note_is_finalized_after_a_confirmation_page(manager, with_draft_decrease):
    original, draft = with_draft_decrease
    correction = Correction.objects.get(credit_note=draft)
    invoice_page = manager.get(reverse("admin:invoicing_invoice_change", args=[original.pk])).content.decode()
    assert "Draft credit note" in invoice_page  # the corrections row and the credit notes inline
    issue_url = reverse("admin:invoicing_correction_issue", args=[correction.pk])
    assert issue_url in invoice_page
    note_page = manager.get(reverse("admin:invoicing_creditnote_change", args=[draft.pk])).content.decode()
    assert issue_url in note_page
    assert reverse("admin:invoicing_correction_discard", args=[correction.pk]) in note_page
    listed = manager.get(reverse("admin:invoicing_creditnote_changelist"), {"status__exact": "draft"}).content.decode()
    assert reverse("admin:invoicing_creditnote_change", args=[draft.pk]) in listed

    confirm = manager.get(issue_url)  # the confirmation page changes nothing
    assert confirm.status_code == 200
    assert '<span id="correction-decrease">USD 6.00</span>' in confirm.content.decode()
    draft.refresh_from_db()
    assert draft.status == "draft"

    assert manager.post(issue_url).status_code == 302
    draft.refresh_from_db()
    assert (draft.status, draft.number, draft.balance_amount) == ("finalized", f"{original.number}-CN001", D("6.00"))
    assert Correction.objects.get(pk=correction.pk).status == CorrectionStatus.ISSUED
    # Issued: the page says so and a second POST issues nothing more.
    assert "not a draft any more" in manager.post(issue_url).content.decode()
    assert CreditNote.objects.count() == 1


def test_a_draft_credit_note_is_discarded_with_a_reason(manager, with_draft_decrease):
    original, draft = with_draft_decrease
    correction = Correction.objects.get(credit_note=draft)
    url = reverse("admin:invoicing_correction_discard", args=[correction.pk])
    assert manager.post(url, {"reason": ""}).status_code == 200  # the form again, nothing discarded
    assert CreditNote.all_objects.filter(pk=draft.pk).exists()
    assert manager.post(url, {"reason": "c was removed by mistake"}).status_code == 302
    assert not CreditNote.all_objects.exists()
    audit = InvoiceEvent.objects.get(invoice=original, kind="correction_discarded")
    assert (audit.payload["reason"], audit.payload["credit_note_id"]) == ("c was removed by mistake", str(draft.pk))
    assert audit.actor == "admin:fm"
    rerate()
    assert not CreditNote.all_objects.exists()  # its events are handled


def test_the_console_lists_events_too_late_to_bill(manager, graduated_plan):
    subscription = subscribe(plan=graduated_plan)
    units(subscription, [50, 30])
    original = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    units(subscription, [40], day=20)  # received today, for January 2024: far past the 90 days
    url = reverse("admin:invoicing_too_late_events")
    assert url in manager.get(reverse("admin:index")).content.decode()
    page = manager.get(url).content.decode()
    late = Event.objects.get(properties__n=40)
    assert late.transaction_id in page
    assert reverse("admin:invoicing_invoice_change", args=[original.pk]) in page
    assert page.count("<tr><td><code>") == 1  # the two counted January events are not listed
    # With a window longer than the delay, nothing is too late.
    Organization.objects.filter(pk=Organization.current().pk).update(late_usage_window_days=36500)
    assert late.transaction_id not in manager.get(url).content.decode()
