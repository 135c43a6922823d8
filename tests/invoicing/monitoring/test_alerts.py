"""Usage alerts: thresholds crossed (worked values), evaluated once per subscription per
ingestion batch, each crossing announced once with alert.triggered to a real loopback receiver.

The plan "alerting" prices api_calls (count) at 0.05 each: 100 calls are 5.00 = 500 cents.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from invoicing.models import AlertCrossing, SubscriptionActivity, TriggeredAlert
from invoicing.monitoring import evaluation, lifetime
from invoicing.monitoring.models import AlertThreshold
from tests.factories.invoicing import subscribe
from tests.factories.plans import make_plan, metric
from tests.webhooks.conftest import register

pytestmark = pytest.mark.django_db

D = Decimal


def _thresholds(*values: str, recurring: str | None = None) -> list[AlertThreshold]:
    rows = [AlertThreshold(value=D(v)) for v in values]
    if recurring:
        rows.append(AlertThreshold(value=D(recurring), recurring=True))
    return rows


def test_crossed_values_one_time_then_recurring_steps_above_the_highest():
    # Lago's UsageMonitoring::Alert#find_thresholds_crossed_increasing: a recurring threshold
    # repeats every `value` above the last one-time threshold (initial + k x step).
    thresholds = _thresholds("1000", "2500", recurring="1000")
    assert evaluation.crossed_values(thresholds, D(500)) == []
    assert evaluation.crossed_values(thresholds, D(1000)) == [D(1000)]
    assert evaluation.crossed_values(thresholds, D(3499)) == [D(1000), D(2500)]
    assert evaluation.crossed_values(thresholds, D(4600)) == [D(1000), D(2500), D(3500), D(4500)]
    # Recurring alone: from 0.
    assert evaluation.crossed_values(_thresholds(recurring="300"), D(1000)) == [D(300), D(600), D(900)]


@pytest.fixture
def subscription(db):
    plan = make_plan(
        code="alerting",
        amount_cents=0,
        charges=[
            {
                "billable_metric_id": str(metric("api_calls").pk),
                "charge_model": "standard",
                "properties": {"amount": "0.05"},
            }
        ],
    )
    now = timezone.now()
    return subscribe(plan=plan, external_id="sub_a", start=datetime(now.year, now.month, 1, tzinfo=UTC))


def _calls(api, count: int, prefix: str, *, batch_size: int = 100) -> None:
    for start in range(0, count, batch_size):
        batch = [
            {"transaction_id": f"{prefix}_{i}", "external_subscription_id": "sub_a", "code": "api_calls"}
            for i in range(start, min(start + batch_size, count))
        ]
        answer = api.post("/api/v1/events/batch", {"events": batch}, format="json")
        assert answer.status_code == 200, answer.content


def _alert(api, **fields: Any) -> dict[str, Any]:
    answer = api.post("/api/v1/subscriptions/sub_a/alerts", {"alert": fields}, format="json")
    assert answer.status_code == 200, answer.json()
    return answer.json()["alert"]


def test_current_usage_alert_announces_each_crossing_once(api, subscription, receiver, flows, monkeypatch):
    """Thresholds 10.00 and 25.00, then every 10.00 above (35.00, 45.00, ...), one evaluation
    per subscription and batch at most: 100 calls (500 cents) cross nothing; 250 (1250) cross
    1000; 450 (2250) nothing new; 750 (3750) cross 2500 and 3500, in one announcement."""
    register(api, receiver.url)
    flows(
        lambda: _alert(
            api,
            alert_type="current_usage_amount",
            code="spend",
            name="Spend",
            thresholds=[
                {"code": "warn", "value": "1000"},
                {"code": "high", "value": 2500},
                {"code": "step", "value": "1000", "recurring": True},
            ],
        )
    )
    usage_reads = []
    real = evaluation.customer_usage
    monkeypatch.setattr(evaluation, "customer_usage", lambda **kw: usage_reads.append(1) or real(**kw))

    flows(lambda: _calls(api, 100, "a"))
    assert receiver.of_type("alert.triggered") == []
    assert len(usage_reads) == 1  # one batch of 100 events: one evaluation

    # Two batches (100 + 50) committed before their evaluation ran: the subscription's one
    # activity row coalesces them, one evaluation (the second task finds no row).
    flows(lambda: _calls(api, 150, "b"))
    assert len(usage_reads) == 2
    (first,) = [r.json["triggered_alert"] for r in receiver.of_type("alert.triggered")]
    assert (first["alert_code"], first["current_value"], first["previous_value"]) == ("spend", "1250", "500")
    assert first["crossed_thresholds"] == [{"code": "warn", "value": "1000", "recurring": False}]
    assert first["external_subscription_id"] == "sub_a"
    assert first["external_customer_id"] == subscription.customer.external_id

    flows(lambda: _calls(api, 200, "c"))
    assert len(receiver.of_type("alert.triggered")) == 1

    flows(lambda: _calls(api, 300, "d"))  # three batches, one evaluation (coalesced)
    second = receiver.of_type("alert.triggered")[-1].json["triggered_alert"]
    assert (second["current_value"], second["previous_value"]) == ("3750", "2250")
    assert second["crossed_thresholds"] == [
        {"code": "high", "value": "2500", "recurring": False},
        {"code": "step", "value": "3500", "recurring": True},
    ]

    # Evaluating again (a retried task, the sweep) announces nothing: the crossings are unique rows.
    flows(lambda: evaluation.activities_record_for_external_ids(external_subscription_ids=["sub_a"]))
    assert len(receiver.of_type("alert.triggered")) == 2
    assert TriggeredAlert.objects.count() == 2
    assert sorted(AlertCrossing.objects.values_list("value", flat=True)) == [D(1000), D(2500), D(3500)]
    assert SubscriptionActivity.objects.count() == 0

    shown = api.get("/api/v1/subscriptions/sub_a/alerts/spend").json()["alert"]
    assert (shown["previous_value"], shown["direction"]) == ("3750", "increasing")
    assert [t["value"] for t in shown["thresholds"]] == ["1000", "1000", "2500"]


def test_metric_and_lifetime_alerts(api, subscription, receiver, flows):
    """250 calls (three batches committed before their one evaluation): 250 units cross 200;
    12.50 on the metric does not reach 2000 cents; lifetime usage 100.00 historical + 12.50 =
    11250 cents crosses 10500."""
    register(api, receiver.url)
    lifetime.lifetime_usage_update(subscription=subscription, historical_usage_amount=D("100"))
    flows(
        lambda: _alert(
            api,
            alert_type="billable_metric_current_usage_units",
            code="units",
            billable_metric_code="api_calls",
            thresholds=[{"value": "200"}],
        )
    )
    flows(
        lambda: _alert(
            api,
            alert_type="billable_metric_current_usage_amount",
            code="metric_spend",
            billable_metric_code="api_calls",
            thresholds=[{"value": "2000"}],
        )
    )
    flows(lambda: _alert(api, alert_type="lifetime_usage_amount", code="life", thresholds=[{"value": "10500"}]))

    flows(lambda: _calls(api, 250, "a"))

    triggered = {
        r.json["triggered_alert"]["alert_code"]: r.json["triggered_alert"] for r in receiver.of_type("alert.triggered")
    }
    assert set(triggered) == {"units", "life"}
    assert (triggered["units"]["current_value"], triggered["units"]["billable_metric_code"]) == ("250", "api_calls")
    assert triggered["life"]["current_value"] == "11250"


@pytest.mark.postgres  # counts or refusals PostgreSQL makes (SQLite differs)
def test_alert_validation_and_crud(api, subscription):
    alert = _alert(api, alert_type="current_usage_amount", code="spend", thresholds=[{"value": "1000"}])
    assert alert["external_subscription_id"] == "sub_a"

    def refused(payload: dict[str, Any]) -> tuple[int, Any]:
        answer = api.post("/api/v1/subscriptions/sub_a/alerts", {"alert": payload}, format="json")
        body = answer.json()
        return answer.status_code, body.get("error_details") or body.get("code")

    base = {"alert_type": "current_usage_amount", "thresholds": [{"value": "5"}]}
    assert refused({**base, "code": "spend"}) == (422, {"code": ["value_already_exist"]})
    assert refused({**base, "code": "other"}) == (422, {"base": ["alert_already_exists"]})
    assert refused({**base, "code": "x", "alert_type": "nope"}) == (422, {"alert_type": ["invalid_type"]})
    assert refused({"alert_type": "current_usage_amount", "code": "x", "thresholds": []}) == (
        422,
        {"thresholds": ["value_is_mandatory"]},
    )
    metric_alert = {"alert_type": "billable_metric_current_usage_units", "code": "m", "thresholds": [{"value": "1"}]}
    assert refused(metric_alert) == (422, {"billable_metric": ["value_is_mandatory"]})
    assert refused({**metric_alert, "billable_metric_code": "nope"}) == (404, "billable_metric_not_found")
    two = [{"value": "1", "recurring": True}, {"value": "2", "recurring": True}]
    assert refused({**base, "code": "y", "alert_type": "lifetime_usage_amount", "thresholds": two}) == (
        422,
        {"thresholds": ["only_one_recurring_threshold"]},
    )
    dup = [{"value": "1"}, {"value": "1"}]
    assert refused({**base, "code": "y", "alert_type": "lifetime_usage_amount", "thresholds": dup}) == (
        422,
        {"thresholds": ["duplicate_threshold_values"]},
    )
    assert refused({**base, "code": "y", "alert_type": "lifetime_usage_amount", "thresholds": [{"value": "-1"}]}) == (
        422,
        {"thresholds:value": ["value_is_invalid"]},
    )

    updated = api.put(
        "/api/v1/subscriptions/sub_a/alerts/spend",
        {"alert": {"name": "Spend", "thresholds": [{"value": "700"}, {"value": "900"}]}},
        format="json",
    ).json()["alert"]
    assert (updated["name"], [t["value"] for t in updated["thresholds"]]) == ("Spend", ["700", "900"])
    listed = api.get("/api/v1/subscriptions/sub_a/alerts").json()
    assert [a["code"] for a in listed["alerts"]] == ["spend"]
    assert listed["meta"]["total_count"] == 1
    assert api.delete("/api/v1/subscriptions/sub_a/alerts/spend").json()["alert"]["code"] == "spend"
    assert api.get("/api/v1/subscriptions/sub_a/alerts/spend").json()["code"] == "alert_not_found"
    assert api.get("/api/v1/subscriptions/nope/alerts").json()["code"] == "subscription_not_found"
