"""The other webhook types, each emitted by its real flow: drafts, pay-in-advance fees, one-off
invoices, credit notes, overdue flagging, termination alerts, event.error and events.errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from payments import services as payment_services
from tests.factories.credit_notes import fee_of, make_invoice, tax
from tests.factories.customers import make_customer
from tests.factories.invoicing import bill, events, subscribe, utc
from tests.factories.payments import make_finalized_invoice
from tests.factories.plans import make_plan, metric, standard_charge
from tests.webhooks.conftest import register
from webhooks import alerts, digests, tasks
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db


def _ok(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.content
    return answer.json()


def test_a_grace_period_run_drafts_then_finalizes(api, receiver, flows, organization, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    organization.invoice_grace_period = 3
    organization.save()
    plan = make_plan(amount_cents=1000, charges=[standard_charge()])
    subscription = subscribe(plan=plan)
    events(subscription, [utc(2024, 1, 10)])
    register(api, receiver.url)

    flows(lambda: bill(utc(2024, 2, 1, 0, 10)))
    assert receiver.types() == ["invoice.drafted"]
    assert receiver.requests[0].json["invoice"]["status"] == "draft"
    draft_id = receiver.requests[0].json["invoice"]["lago_id"]

    flows(lambda: _ok(api.put(f"/api/v1/invoices/{draft_id}/finalize")))
    assert receiver.types() == ["invoice.drafted", "invoice.created"]
    assert receiver.requests[1].json["invoice"]["status"] == "finalized"


def test_a_pay_in_advance_event_announces_its_fee(api, receiver, flows):
    charge = {**standard_charge(amount="1"), "pay_in_advance": True, "invoiceable": False}
    charge["billable_metric_id"] = str(metric("api_calls").pk)
    subscribe(plan=make_plan(amount_cents=0, charges=[charge]), start=timezone.now() - timedelta(days=1))
    register(api, receiver.url, event_types=["fee.created"])

    event = {"transaction_id": "adv_1", "external_subscription_id": "sub_1", "code": "api_calls"}
    flows(lambda: _ok(api.post("/api/v1/events", {"event": event})))
    assert receiver.types() == ["fee.created"]
    assert receiver.requests[0].json["fee"]["pay_in_advance"] is True
    assert receiver.requests[0].json["fee"]["amount_cents"] == 100


def test_a_one_off_invoice_and_a_credit_note(api, receiver, flows, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    make_customer(external_id="one_off", currency="USD")
    _ok(
        api.post(
            "/api/v1/add_ons",
            {"add_on": {"name": "Setup", "code": "setup", "amount_cents": 5000, "amount_currency": "USD"}},
        )
    )
    register(api, receiver.url)
    answer = flows(
        lambda: _ok(
            api.post(
                "/api/v1/invoices",
                {"invoice": {"external_customer_id": "one_off", "currency": "USD", "fees": [{"add_on_code": "setup"}]}},
            )
        )
    )
    assert receiver.types() == ["invoice.one_off_created"]
    assert receiver.requests[0].json["invoice"]["lago_id"] == answer["invoice"]["lago_id"]

    invoice = make_invoice(
        customer=make_customer(external_id="cn_hooks"), fees=[{"amount": "100.00", "taxes": [tax("vat_20", "20")]}]
    )
    body = {
        "credit_note": {
            "invoice_id": str(invoice.pk),
            "reason": "other",
            "credit_amount_cents": 1200,
            "items": [{"fee_id": str(fee_of(invoice).pk), "amount_cents": 1000}],
        }
    }
    note = flows(lambda: _ok(api.post("/api/v1/credit_notes", body)))["credit_note"]
    assert receiver.types()[-1] == "credit_note.created"
    assert receiver.requests[-1].json["credit_note"] == note


def test_overdue_flagging_announces_each_invoice(api, receiver, flows):
    today = timezone.now().date()
    late = make_finalized_invoice(issuing_date=today - timedelta(days=40), payment_due_date=today - timedelta(days=10))
    make_finalized_invoice(payment_due_date=today + timedelta(days=10))
    register(api, receiver.url)

    flows(lambda: payment_services.invoices_overdue_refresh(today=today))
    assert receiver.types() == ["invoice.payment_overdue"]
    assert receiver.requests[0].json["invoice"]["lago_id"] == str(late.pk)
    assert receiver.requests[0].json["invoice"]["payment_overdue"] is True


def test_termination_alerts_45_and_15_days_before_ending_at(api, receiver, flows):
    now = timezone.now()
    plan = make_plan(amount_cents=1000)
    subscribe(plan=plan, external_id="ends_45", start=now - timedelta(days=3), ending_at=now + timedelta(days=45))
    subscribe(plan=plan, external_id="ends_20", start=now - timedelta(days=3), ending_at=now + timedelta(days=20))
    register(api, receiver.url)

    flows(lambda: alerts.termination_alerts_emit(now=now))
    flows(lambda: alerts.termination_alerts_emit(now=now))  # the same day again: nothing new
    assert receiver.types() == ["subscription.termination_alert"]
    assert receiver.requests[0].json["subscription"]["external_id"] == "ends_45"


def test_a_conflicting_duplicate_event_is_announced_as_event_error(api, receiver, flows):
    register(api, receiver.url)
    event = {
        "transaction_id": "dup_1",
        "external_subscription_id": "sub_x",
        "code": "api_calls",
        "properties": {"a": 1},
    }
    flows(lambda: _ok(api.post("/api/v1/events", {"event": event})))
    refused = flows(lambda: api.post("/api/v1/events", {"event": {**event, "properties": {"a": 2}}}))
    assert refused.status_code == 422
    flows(lambda: _ok(api.post("/api/v1/events", {"event": event})))  # an exact replay is no error

    assert receiver.types() == ["event.error"]
    sent = receiver.requests[0].json["event_error"]
    assert sent["status"] == 422
    assert sent["input_params"]["transaction_id"] == "dup_1"
    assert sent["input_params"]["properties"] == {"a": 2}


def test_the_hourly_digest_lists_events_that_bill_nothing(api, receiver, flows):
    metric("api_calls")
    metric("storage", aggregation_type="sum_agg", field_name="gb")
    subscribe(plan=make_plan(amount_cents=0), start=timezone.now() - timedelta(days=1))
    register(api, receiver.url)
    for event in (
        {"transaction_id": "unknown_code", "external_subscription_id": "sub_1", "code": "nope"},
        {"transaction_id": "no_sub", "external_subscription_id": "sub_ghost", "code": "api_calls"},
        {"transaction_id": "no_field", "external_subscription_id": "sub_1", "code": "storage"},
        {"transaction_id": "fine", "external_subscription_id": "sub_1", "code": "api_calls"},
    ):
        flows(lambda event=event: _ok(api.post("/api/v1/events", {"event": event})))

    next_hour = timezone.now() + timedelta(hours=1)
    assert flows(lambda: digests.events_errors_emit(now=next_hour)) is True
    assert flows(lambda: digests.events_errors_emit(now=next_hour)) is False  # once per hour
    assert receiver.types() == ["events.errors"]
    digest = receiver.requests[0].json["events_errors"]
    assert digest["invalid_code"] == ["unknown_code"]
    assert digest["no_matching_subscription"] == ["no_sub"]
    assert digest["missing_aggregation_property"] == ["no_field"]
    assert WebhookDelivery.objects.count() == 1
    assert tasks.announce_events_errors.name == "webhooks.tasks.announce_events_errors"
