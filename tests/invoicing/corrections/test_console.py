"""The console's late-usage pages through the test client, as a Finance Manager: each fee of the
invoice page links to its events; a correction draft is discarded only with a reason (its
events handled, an audit row on the original); a draft decrease is issued from the original's
page; what-if prices the invoice under another plan and saves nothing."""

from __future__ import annotations

from decimal import Decimal
from importlib import import_module

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from invoicing.corrections.models import Correction, CorrectionStatus
from invoicing.models import Invoice, InvoiceEvent, InvoiceType
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
