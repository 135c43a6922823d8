"""Late usage announced to a real loopback receiver: a correction's credit note carries
`corrected_invoice_id` (the original invoice, as the correction invoice's `invoice.created`
does), under `correct` at once and under `review` when finance finalizes the draft; a draft is
announced by nothing. Events past the late-usage window reach the events.errors digest."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from customers.models import Organization
from invoicing.corrections.rerate import late_usage_rerate
from tests.factories.invoicing import bill, only_invoice, subscribe, utc
from tests.factories.metrics import make_events
from tests.factories.plans import make_plan, make_tax, metric
from tests.webhooks.conftest import register
from webhooks import digests

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]  # the late-usage trigger, the lineage SQL


def _users(subscription: Any, rows: list[tuple[int, str, bool]]) -> None:
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
def january(flows):
    """Users a, b, c in January 2024 at 5.00 each = 15.00 + 20% VAT = 18.00, finalized."""
    make_tax(code="vat_20", rate="20", applied_to_organization=True)
    users = metric("users", aggregation_type="unique_count_agg", field_name="user")
    plan = make_plan(
        amount_cents=0,
        charges=[{"billable_metric_id": str(users.pk), "charge_model": "standard", "properties": {"amount": "5"}}],
    )
    subscription = subscribe(plan=plan)
    _users(subscription, [(3, "a", False), (4, "b", False), (5, "c", False)])
    original = flows(lambda: only_invoice(bill(utc(2024, 2, 1, 0, 10))))
    assert original.total_amount == Decimal("18.00")
    return subscription, original


def _policy(policy: str) -> None:
    Organization.objects.filter(pk=Organization.current().pk).update(late_usage_policy=policy)


def _rerate(flows: Any) -> Any:
    return flows(lambda: late_usage_rerate(at=utc(2024, 2, 1, 1), actor="test"))


def test_a_correction_credit_note_names_the_invoice_it_corrects(api, receiver, flows, january, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    _policy("correct")
    subscription, original = january
    register(api, receiver.url, event_types=["credit_note.created"])
    _users(subscription, [(20, "c", True)])  # c removed on January 20th: 5.00 + 1.00 VAT owed back
    assert _rerate(flows).credit_notes == 1
    assert receiver.types() == ["credit_note.created"]
    note = receiver.requests[0].json["credit_note"]
    assert note["corrected_invoice_id"] == str(original.pk)
    assert note["lago_invoice_id"] == str(original.pk)
    assert (note["status"], note["reason"], note["total_amount_cents"]) == ("finalized", "order_change", 600)
    assert note["number"] == f"{original.number}-CN001"


def test_a_draft_decrease_is_announced_when_finance_finalizes_it(api, receiver, flows, january, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    _policy("review")
    subscription, original = january
    register(api, receiver.url, event_types=["credit_note.created"])
    _users(subscription, [(20, "c", True)])
    _rerate(flows)
    assert receiver.types() == []  # a draft is no credit note yet
    draft_id = api.get("/api/v1/credit_notes", {"status": "draft"}).json()["credit_notes"][0]["lago_id"]
    answer = flows(lambda: api.put(f"/api/v1/credit_notes/{draft_id}/finalize"))
    assert answer.status_code == 200, answer.content
    assert receiver.types() == ["credit_note.created"]
    note = receiver.requests[0].json["credit_note"]
    assert (note["lago_id"], note["status"], note["number"]) == (draft_id, "finalized", f"{original.number}-CN001")
    assert note["corrected_invoice_id"] == str(original.pk)
    assert note["balance_amount_cents"] == 600


def test_a_manual_credit_note_corrects_nothing(api, receiver, flows, january, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    _, original = january
    register(api, receiver.url, event_types=["credit_note.created"])
    fee = original.fees.get(fee_type="charge")
    body = {"credit_note": {"invoice_id": str(original.pk), "items": [{"fee_id": str(fee.pk), "amount_cents": 500}]}}
    assert flows(lambda: api.post("/api/v1/credit_notes", body)).status_code == 200
    assert receiver.requests[0].json["credit_note"]["corrected_invoice_id"] is None


def test_events_past_the_window_reach_the_digest_as_too_late(api, receiver, flows, january):
    subscription, original = january
    register(api, receiver.url, event_types=["events.errors"])
    # Received now for January 2024: its period ended far more than 90 days ago.
    make_events(
        [
            {
                "transaction_id": "too_late_1",
                "external_subscription_id": subscription.external_id,
                "code": "users",
                "timestamp": utc(2024, 1, 20, 12),
                "properties": {"user": "d"},
            }
        ]
    )
    assert flows(lambda: digests.events_errors_emit(now=timezone.now() + timedelta(hours=1))) is True
    digest = receiver.requests[0].json["events_errors"]
    assert digest["too_late_for_correction"] == ["too_late_1"]
    assert digest["invalid_code"] == digest["no_matching_subscription"] == digest["missing_aggregation_property"] == []
