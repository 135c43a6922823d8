"""The issue's worked example: 80 units invoiced for January, 40 arrive late. Tiers 0-100 at
1.00 and 101+ at 0.50: the whole period is 100 x 1.00 + 20 x 0.50 = 110.00, the invoice said
80.00, so the correction is 30.00 + 20% VAT 6.00 = 36.00 (not 40 x 1.00: the tier is crossed)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing.corrections.models import Correction, CorrectionStatus, FeeEventSet, LateUsageMark
from invoicing.models import Fee, Invoice, InvoiceStatus, InvoiceType
from tests.factories.invoicing import bill, only_invoice, subscribe, utc

from .conftest import rerate, set_policy, units

pytestmark = pytest.mark.django_db

D = Decimal


def _january(plan):
    subscription = subscribe(plan=plan)
    units(subscription, [50, 30])
    original = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    return subscription, original


def test_graduated_crossing_correct_policy_issues_a_correction(graduated_plan):
    set_policy("correct")
    subscription, original = _january(graduated_plan)
    assert original.status == InvoiceStatus.FINALIZED
    assert original.fees_amount == D("80.00") and original.total_amount == D("96.00")
    before = (original.number, original.total_amount, original.updated_at)
    # Both events counted: the fee's set holds their two ids.
    assert [
        len(ids) for ids in FeeEventSet.objects.filter(fee__invoice=original).values_list("event_ids", flat=True)
    ] == [2]

    units(subscription, [40], day=20)  # late
    assert LateUsageMark.objects.filter(external_subscription_id=subscription.external_id).exists()
    summary = rerate()
    assert summary.corrections == 1, summary

    correction = Invoice.objects.get(invoice_type=InvoiceType.CORRECTION)
    assert correction.corrected_invoice_id == original.pk
    assert correction.status == InvoiceStatus.FINALIZED
    assert correction.number and "DRAFT" not in correction.number
    assert correction.fees_amount == D("30.00")
    assert correction.taxes_amount == D("6.00")
    assert correction.total_amount == D("36.00")
    fee = correction.fees.get()
    original_fee = original.fees.get(fee_type="charge")
    assert fee.corrected_fee_id == original_fee.pk
    assert (fee.units.normalize(), fee.events_count) == (D("40"), 1)
    assert (fee.from_datetime, fee.to_datetime) == (original_fee.from_datetime, original_fee.to_datetime)
    # The original never changes.
    original.refresh_from_db()
    assert (original.number, original.total_amount, original.updated_at) == before
    assert not LateUsageMark.objects.exists()
    # A rerun at the same instant creates nothing.
    assert rerate().corrections == 0
    assert Invoice.objects.filter(invoice_type=InvoiceType.CORRECTION).count() == 1


def test_review_policy_waits_as_a_draft_refreshed_by_later_events(graduated_plan):
    set_policy("review")
    subscription, original = _january(graduated_plan)
    units(subscription, [10], day=20)
    rerate()
    draft = Invoice.objects.get(invoice_type=InvoiceType.CORRECTION)
    assert draft.status == InvoiceStatus.DRAFT and draft.fees_amount == D("10.00")
    # 30 more arrive while it waits: the draft is replaced by one covering both (80+40 = 120).
    units(subscription, [30], day=21)
    rerate()
    drafts = Invoice.objects.filter(invoice_type=InvoiceType.CORRECTION)
    assert drafts.count() == 1
    refreshed = drafts.get()
    assert refreshed.status == InvoiceStatus.DRAFT and refreshed.fees_amount == D("30.00")
    assert refreshed.fees.get().events_count == 2
    assert Correction.objects.filter(status=CorrectionStatus.SUPERSEDED).count() == 1


def test_ignore_policy_bills_nothing(graduated_plan):
    set_policy("ignore")
    subscription, _ = _january(graduated_plan)
    units(subscription, [40], day=20)
    assert rerate().ignored == 1
    assert not Invoice.objects.filter(invoice_type=InvoiceType.CORRECTION).exists()
    assert not LateUsageMark.objects.exists()


def test_two_late_batches_make_two_corrections(graduated_plan):
    set_policy("correct")
    subscription, original = _january(graduated_plan)
    units(subscription, [10], day=20)
    rerate()
    units(subscription, [30], day=21)
    rerate()
    corrections = Invoice.objects.filter(invoice_type=InvoiceType.CORRECTION).order_by("created_at")
    # 80 -> 90: 10.00; 90 -> 120: 10 x 1.00 + 20 x 0.50 = 20.00.
    assert [c.fees_amount for c in corrections] == [D("10.00"), D("20.00")]
    assert all(c.corrected_invoice_id == original.pk for c in corrections)
    assert Fee.objects.filter(invoice__in=corrections).count() == 2


def test_the_webhook_announces_the_correction_with_its_original(graduated_plan, settings):
    import json

    settings.TOLLGATE_WEBHOOKS_ALLOW_PRIVATE_URLS = True
    from webhooks.models import WebhookDelivery
    from webhooks.services import webhook_endpoint_create

    webhook_endpoint_create(webhook_url="http://127.0.0.1:9/hooks", signature_algo="hmac")
    set_policy("correct")
    subscription, original = _january(graduated_plan)
    units(subscription, [40], day=20)
    rerate()
    correction = Invoice.objects.get(invoice_type=InvoiceType.CORRECTION)
    created = [
        json.loads(d.body)
        for d in WebhookDelivery.objects.filter(webhook_type="invoice.created", object_id=str(correction.pk))
    ]
    assert len(created) == 1
    body = created[0]["invoice"]
    assert body["invoice_type"] == "correction"
    assert body["corrected_invoice_id"] == str(original.pk)
    assert body["fees"][0]["lago_original_fee_id"] == str(original.fees.get(fee_type="charge").pk)
    assert body["total_amount_cents"] == 3600


def test_events_past_the_window_are_reported_too_late(graduated_plan):
    from datetime import timedelta

    from django.utils import timezone

    from invoicing.corrections.selectors import too_late_events
    from metrics.models import Event

    subscription, original = _january(graduated_plan)
    units(subscription, [40], day=20)  # received today, for January 2024: far past 90 days
    late = Event.objects.filter(properties__n=40).get()
    now = timezone.now()
    assert too_late_events(received_from=now - timedelta(hours=1), received_to=now + timedelta(hours=1)) == [
        late.transaction_id
    ]
    summary = rerate(now)  # re-rated today: the period ended too long ago
    assert summary.too_late == 1 and summary.corrections == 0
    assert not Invoice.objects.filter(invoice_type=InvoiceType.CORRECTION).exists()
