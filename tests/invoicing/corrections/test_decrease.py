"""Less owed: a late unique-count `remove`. January: users a, b and c at 5.00 each = 15.00 (+20%
VAT = 18.00). A `remove` of c dated January 20 arrives in February: the period recomputed is 2
users = 10.00, so 5.00 (+ 1.00 VAT = 6.00) is credited on the original, reason order_change."""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing.corrections.models import Correction, CorrectionStatus
from invoicing.corrections.rerate import correction_issue
from invoicing.models import CreditNote, Invoice, InvoiceType
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
    assert not CreditNote.objects.exists()
    correction_issue(correction=correction, actor="test")
    correction.refresh_from_db()
    assert correction.status == CorrectionStatus.ISSUED
    assert correction.credit_note.total_amount == D("6.00")
