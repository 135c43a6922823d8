"""Wallet alerts (Lago's /customers/{external_id}/wallets/{code}/alerts): the four wallet types,
decreasing thresholds crossed once per fall, evaluated where a balance or ongoing balance moves,
announced with alert.triggered to a real loopback receiver; the routes' shapes and codes.

Lago's app/models/usage_monitoring/alert.rb (find_thresholds_crossed_decreasing),
wallet_*_alert.rb (the value each type compares: balance_cents, credits_balance,
ongoing_balance_cents, credits_ongoing_balance), services/usage_monitoring/create_alert_service.rb
(wallet types only on a wallet, `decreasing`, previous_value = the wallet's value at creation),
spec/scenarios/wallets/alerting/*.rb (the worked values below) and api_error_handling_spec.rb.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from invoicing.models import Alert, AlertCrossing, TriggeredAlert
from invoicing.monitoring import evaluation
from invoicing.monitoring.models import AlertThreshold
from invoicing.wallets import ledger, services
from tests.factories.customers import make_customer
from tests.factories.invoicing import subscribe
from tests.factories.plans import make_plan, standard_charge
from tests.factories.wallets import make_wallet
from tests.webhooks.conftest import register

pytestmark = pytest.mark.django_db

D = Decimal
_tx = itertools.count()


def _thresholds(*values: str, recurring: str | None = None) -> list[AlertThreshold]:
    rows = [AlertThreshold(value=D(v)) for v in values]
    if recurring:
        rows.append(AlertThreshold(value=D(recurring), recurring=True))
    return rows


def test_decreasing_crossings_are_the_thresholds_a_fall_passes():
    # spec/scenarios/wallets/alerting/wallet_balance_amount_alert_spec.rb, in cents.
    three = _thresholds("8000", "5000", "2000")
    assert evaluation.crossed_values_decreasing(three, D(10000), D(9000)) == []
    assert evaluation.crossed_values_decreasing(three, D(9000), D(7000)) == [D(8000)]
    assert evaluation.crossed_values_decreasing(_thresholds("9000", "7000", "5000"), D(9500), D(4000)) == [
        D(5000),
        D(7000),
        D(9000),
    ]
    # Falling to the threshold itself crosses it; a value already at it is not crossed again.
    assert evaluation.crossed_values_decreasing(three, D(5001), D(5000)) == [D(5000)]
    assert evaluation.crossed_values_decreasing(three, D(5000), D(4000)) == []
    # Rising, or standing still, crosses nothing.
    assert evaluation.crossed_values_decreasing(three, D(2000), D(9000)) == []
    assert evaluation.crossed_values_decreasing(three, D(7000), D(7000)) == []
    # Recurring: every 2000 below the lowest one-time threshold (8000 - k x 2000).
    recurring = _thresholds("8000", recurring="2000")
    assert evaluation.crossed_values_decreasing(recurring, D(9500), D(7000)) == [D(8000)]
    assert evaluation.crossed_values_decreasing(recurring, D(7000), D(5000)) == [D(6000)]
    assert evaluation.crossed_values_decreasing(recurring, D(6000), D(5000)) == []
    assert evaluation.crossed_values_decreasing(recurring, D(6100), D(3900)) == [D(4000), D(6000)]
    # Recurring alone steps down from 0 (a negative ongoing balance).
    assert evaluation.crossed_values_decreasing(_thresholds(recurring="500"), D(200), D(-1100)) == [
        D(-1000),
        D(-500),
    ]


@pytest.fixture
def wallet(db):
    customer = make_customer(external_id="alerted", currency="USD")
    return make_wallet(customer=customer, code="main", granted_credits="100")


URL = "/api/v1/customers/alerted/wallets/main/alerts"


def _alert(api, **fields: Any) -> dict[str, Any]:
    answer = api.post(URL, {"alert": fields}, format="json")
    assert answer.status_code == 200, answer.json()
    return answer.json()["alert"]


def _void(wallet, credits: str) -> None:
    services.wallet_transactions_create(wallet=wallet, actor="test", voided_credits=credits)


def _grant(wallet, credits: str) -> None:
    services.wallet_transactions_create(wallet=wallet, actor="test", granted_credits=credits)


def test_balance_alert_announces_each_fall_through_a_threshold_once(api, wallet, receiver, flows):
    """100 granted credits at rate 1 (10000 cents); thresholds 80.00 (warn) and 50.00 (critical).
    Voiding 15 (8500) crosses nothing; 20 more (6500) crosses 8000; re-evaluating announces
    nothing; a grant of 30 (9500) rises above 8000 again, so voiding 20 (7500) crosses it a
    second time; voiding 30 (4500) crosses 5000."""
    register(api, receiver.url)
    created = flows(
        lambda: _alert(
            api,
            alert_type="wallet_balance_amount",
            code="low_balance",
            name="Low balance",
            thresholds=[{"code": "warn", "value": 8000}, {"code": "critical", "value": "5000"}],
        )
    )
    assert (created["direction"], created["previous_value"]) == ("decreasing", "10000")
    assert (created["lago_wallet_id"], created["wallet_code"]) == (str(wallet.pk), "main")
    assert (created["external_subscription_id"], created["billable_metric"]) == (None, None)

    flows(lambda: _void(wallet, "15"))
    assert receiver.of_type("alert.triggered") == []
    flows(lambda: _void(wallet, "20"))
    (first,) = [r.json["triggered_alert"] for r in receiver.of_type("alert.triggered")]
    assert (first["alert_code"], first["alert_type"], first["current_value"], first["previous_value"]) == (
        "low_balance",
        "wallet_balance_amount",
        "6500",
        "8500",
    )
    assert first["crossed_thresholds"] == [{"code": "warn", "value": "8000", "recurring": False}]
    assert (first["lago_wallet_id"], first["lago_subscription_id"], first["external_customer_id"]) == (
        str(wallet.pk),
        None,
        "alerted",
    )
    assert first["alert_name"] == "Low balance"

    # A retried evaluation (the same balance) announces nothing more.
    def again() -> None:
        with transaction.atomic():
            services.alerts_check_locked([ledger.lock_wallet(wallet)])

    flows(again)
    assert len(receiver.of_type("alert.triggered")) == 1

    flows(lambda: _grant(wallet, "30"))  # 9500: above 8000 again
    assert len(receiver.of_type("alert.triggered")) == 1
    flows(lambda: _void(wallet, "20"))  # 7500: the second fall through 8000
    second = receiver.of_type("alert.triggered")[-1].json["triggered_alert"]
    assert (second["current_value"], second["previous_value"]) == ("7500", "9500")
    assert second["crossed_thresholds"] == [{"code": "warn", "value": "8000", "recurring": False}]
    flows(lambda: _void(wallet, "30"))  # 4500
    third = receiver.of_type("alert.triggered")[-1].json["triggered_alert"]
    assert third["crossed_thresholds"] == [{"code": "critical", "value": "5000", "recurring": False}]

    assert len(receiver.of_type("alert.triggered")) == 3
    assert TriggeredAlert.objects.filter(wallet=wallet, subscription__isnull=True).count() == 3
    assert sorted(AlertCrossing.objects.values_list("value", flat=True)) == [D(5000), D(8000), D(8000)]
    shown = api.get(f"{URL}/low_balance").json()["alert"]
    assert (shown["previous_value"], shown["last_processed_at"] is not None) == ("4500", True)


def test_a_crossing_is_recorded_once_by_the_database(wallet):
    """Two evaluations that read the alert before either wrote (the same previous value and
    period): the second finds the first's crossing; a duplicate row is refused outright."""
    alert = Alert.objects.create(
        wallet=wallet, alert_type="wallet_balance_amount", code="a", direction="decreasing", previous_value=D(10000)
    )
    AlertThreshold.objects.create(alert=alert, value=D(8000))
    first, second = Alert.objects.get(pk=alert.pk), Alert.objects.get(pk=alert.pk)
    now = timezone.now()
    row = evaluation.alert_evaluate(alert=first, wallet=wallet, current=D(7000), period_from=alert.created_at, now=now)
    assert row is not None and row.crossed_thresholds == [{"code": None, "value": "8000", "recurring": False}]
    assert (
        evaluation.alert_evaluate(alert=second, wallet=wallet, current=D(7000), period_from=alert.created_at, now=now)
        is None
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        AlertCrossing.objects.create(
            alert=alert, period_from_datetime=alert.created_at, value=D(8000), triggered_alert=row
        )
    assert TriggeredAlert.objects.count() == 1
    # An alert belongs to a subscription or to a wallet, never both or neither.
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(alert_type="wallet_balance_amount", code="orphan")


def test_credits_alert_on_a_half_rate_wallet(api, flows):
    # Rate 0.5: 40 credits are 20.00 (2000 cents); wallet_credits_balance compares credits.
    customer = make_customer(external_id="half", currency="USD")
    wallet = make_wallet(customer=customer, code="half", rate_amount="0.5", granted_credits="40")
    answer = api.post(
        "/api/v1/customers/half/wallets/half/alerts",
        {
            "alerts": [
                {"alert_type": "wallet_credits_balance", "code": "credits", "thresholds": [{"value": "30"}]},
                {"alert_type": "wallet_balance_amount", "code": "amount", "thresholds": [{"value": "1600"}]},
            ]
        },
        format="json",
    ).json()
    assert [(a["code"], a["previous_value"]) for a in answer["alerts"]] == [("credits", "40"), ("amount", "2000")]
    flows(lambda: _void(wallet, "9"))  # 31 credits, 15.50 (1550 cents): the amount alert only
    assert list(TriggeredAlert.objects.values_list("alert__code", "current_value")) == [("amount", D(1550))]
    flows(lambda: _void(wallet, "2"))  # 29 credits
    assert set(TriggeredAlert.objects.values_list("alert__code", "current_value")) == {
        ("amount", D(1550)),
        ("credits", D(29)),
    }


def test_ongoing_balance_alerts_follow_ingestion(api, settings, django_capture_on_commit_callbacks):
    """10 granted credits at rate 1, events at 1.00 each not invoiced yet: the ongoing balance
    falls 10.00 -> 6.00 -> 2.00 as batches arrive (the refresh after each batch evaluates)."""
    settings.TOLLGATE_WALLET_ONGOING_REFRESH_SECONDS = 0
    customer = make_customer(external_id="ongoing", currency="USD")
    wallet = make_wallet(customer=customer, code="w", granted_credits="10")
    plan = make_plan(code="ongoing", amount_cents=0, charges=[standard_charge(amount="1")])
    subscribe(plan=plan, customer=customer, external_id="sub_ongoing", start=timezone.now() - timedelta(days=1))
    for alert_type, values in (
        ("wallet_ongoing_balance_amount", ["800", "300"]),
        ("wallet_credits_ongoing_balance", ["5"]),
    ):
        answer = api.post(
            "/api/v1/customers/ongoing/wallets/w/alerts",
            {"alert": {"alert_type": alert_type, "code": alert_type, "thresholds": [{"value": v} for v in values]}},
            format="json",
        )
        assert answer.status_code == 200, answer.json()

    def ingest(count: int) -> None:
        batch = [
            {
                "transaction_id": f"tx_alert_{next(_tx)}",
                "external_subscription_id": "sub_ongoing",
                "code": "api_calls",
                "timestamp": (timezone.now() - timedelta(minutes=1)).timestamp(),
            }
            for _ in range(count)
        ]
        with django_capture_on_commit_callbacks(execute=True):
            assert api.post("/api/v1/events/batch", {"events": batch}).status_code == 200

    ingest(4)
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.ongoing_balance) == (D("10"), D("6"))
    crossed = list(TriggeredAlert.objects.values_list("alert__code", "current_value", "crossed_thresholds"))
    assert crossed == [("wallet_ongoing_balance_amount", D(600), [{"code": None, "value": "800", "recurring": False}])]
    ingest(4)
    # One refresh crosses both (the same triggered_at): compared as a set.
    rows = set(TriggeredAlert.objects.values_list("alert__code", "current_value"))
    assert rows == {
        ("wallet_ongoing_balance_amount", D(600)),
        ("wallet_ongoing_balance_amount", D(200)),
        ("wallet_credits_ongoing_balance", D(2)),
    }


def test_routes_answer_lagos_shapes_and_codes(api, wallet):
    base = {"alert_type": "wallet_balance_amount", "thresholds": [{"value": "5000"}]}

    def refused(payload: dict[str, Any], url: str = URL) -> tuple[int, Any]:
        answer = api.post(url, {"alert": payload}, format="json")
        body = answer.json()
        return answer.status_code, body.get("error_details") or body.get("code")

    _alert(api, code="first", **base)
    # spec/scenarios/wallets/alerting/api_error_handling_spec.rb
    assert refused({**base, "code": "second"}) == (422, {"base": ["alert_already_exists"]})
    assert refused({**base, "code": "first", "alert_type": "wallet_credits_balance"}) == (
        422,
        {"code": ["value_already_exist"]},
    )
    assert refused({**base, "code": "x", "alert_type": "current_usage_amount"}) == (
        422,
        {"alert_type": ["invalid_type"]},
    )
    assert refused({**base, "code": "x", "alert_type": "not_a_real_type"}) == (422, {"alert_type": ["invalid_type"]})
    assert refused({"thresholds": [{"value": "1"}], "code": "x"}) == (
        422,
        {"alert_type": ["value_is_mandatory", "value_is_invalid"]},
    )
    assert refused({"alert_type": "wallet_credits_balance", "thresholds": [{"value": "1"}]}) == (
        422,
        {"code": ["value_is_mandatory"]},
    )
    assert refused({"alert_type": "wallet_credits_balance", "code": "x"}) == (
        422,
        {"thresholds": ["value_is_mandatory"]},
    )
    dup = [{"value": "100"}, {"value": "100"}]
    assert refused({"alert_type": "wallet_credits_balance", "code": "x", "thresholds": dup}) == (
        422,
        {"thresholds": ["duplicate_threshold_values"]},
    )
    assert refused(base, "/api/v1/customers/alerted/wallets/nope/alerts") == (404, "wallet_not_found")
    assert refused(base, "/api/v1/customers/nope/wallets/main/alerts") == (404, "customer_not_found")
    # A wallet type on a subscription is refused there too.
    plan = make_plan(code="alerts_plan", amount_cents=0)
    subscribe(plan=plan, customer=wallet.customer, external_id="sub_w")
    assert refused({**base, "code": "x"}, "/api/v1/subscriptions/sub_w/alerts") == (
        422,
        {"alert_type": ["invalid_type"]},
    )
    # A batch is all or none; the refused alert answers by its index.
    batch = [{**base, "alert_type": "wallet_credits_balance", "code": "ok"}, {**base, "code": "again"}]
    answer = api.post(URL, {"alerts": batch}, format="json")
    assert (answer.status_code, answer.json()["error_details"]) == (
        422,
        {"1": {"params": batch[1], "errors": 'Validation errors: {"base":["alert_already_exists"]}'}},
    )
    assert [a["code"] for a in api.get(URL).json()["alerts"]] == ["first"]
    assert Alert.objects.filter(wallet=wallet).count() == 1

    updated = api.patch(
        f"{URL}/first", {"alert": {"name": "Low", "thresholds": [{"value": "700"}, {"value": "900"}]}}, format="json"
    ).json()["alert"]
    assert (updated["name"], [t["value"] for t in updated["thresholds"]]) == ("Low", ["700", "900"])
    listed = api.get(URL).json()
    assert (listed["meta"]["total_count"], listed["alerts"][0]["direction"]) == (1, "decreasing")
    assert api.get(f"{URL}/nope").json()["code"] == "alert_not_found"
    assert api.delete(f"{URL}/first").json()["alert"]["code"] == "first"
    assert api.get(f"{URL}/first").status_code == 404
    _alert(api, code="one", **base)
    _alert(api, code="two", **{**base, "alert_type": "wallet_credits_balance"})
    assert api.delete(URL).status_code == 200
    assert api.get(URL).json()["alerts"] == []
    # The same code lives on another wallet of the customer.
    make_wallet(customer=wallet.customer, code="second")
    assert (
        api.post(
            "/api/v1/customers/alerted/wallets/second/alerts", {"alert": {**base, "code": "one"}}, format="json"
        ).status_code
        == 200
    )


def test_a_refused_batch_answers_every_refused_alert_by_its_index(api, wallet):
    """Lago's spec/requests/api/v1/customers/wallets/alerts_controller_spec.rb ("when several
    alerts are invalid"): index 1 has an unknown type, index 2 repeats index 0's type (and code);
    the answer names both, each with the params it sent (Lago's permitted keys: `extra` and a
    threshold's `note` are not echoed) and Lago's message; index 0 was valid but nothing is kept.
    Each alert is tried in order, after the earlier ones (UsageMonitoring::Alerts::CreateBatchService)."""
    batch = [
        {"code": "duplicated", "alert_type": "wallet_balance_amount", "thresholds": [{"value": 1000}]},
        {"code": "alert2", "alert_type": "invalid_type", "thresholds": [{"value": 2000, "note": "x"}], "extra": 1},
        {"code": "duplicated", "alert_type": "wallet_balance_amount", "thresholds": [{"value": 3000}]},
        {"code": "fine", "alert_type": "wallet_credits_balance", "thresholds": [{"value": "5"}]},
    ]

    answer = api.post(URL, {"alerts": batch}, format="json")

    body = answer.json()
    assert (answer.status_code, body["code"]) == (422, "validation_errors")
    assert body["error_details"] == {
        "1": {
            "params": {"code": "alert2", "alert_type": "invalid_type", "thresholds": [{"value": 2000}]},
            "errors": 'Validation errors: {"alert_type":["invalid_type"]}',
        },
        "2": {"params": batch[2], "errors": 'Validation errors: {"base":["alert_already_exists"]}'},
    }
    assert Alert.objects.filter(wallet=wallet).count() == 0
    assert api.get(URL).json()["alerts"] == []


def test_a_refused_subscription_batch_names_each_unknown_metric(api):
    """Lago's spec/services/usage_monitoring/alerts/create_batch_service_spec.rb ("existing and
    non-existing billable metric codes"): indexes 0 and 2 answer `billable_metric_not_found`."""
    plan = make_plan(code="batch_plan", amount_cents=0, charges=[standard_charge(amount="1")])
    subscribe(plan=plan, customer=make_customer(external_id="batcher"), external_id="sub_batch")
    batch = [
        {
            "alert_type": "billable_metric_current_usage_amount",
            "code": f"alert{i}",
            "billable_metric_code": metric_code,
            "thresholds": [{"value": value}],
        }
        for i, (metric_code, value) in enumerate(
            (("first_non_existing_code", 50), ("api_calls", 80), ("non_existing_code", 100))
        )
    ]

    answer = api.post("/api/v1/subscriptions/sub_batch/alerts", {"alerts": batch}, format="json")

    assert answer.status_code == 422
    assert answer.json()["error_details"] == {
        "0": {"params": batch[0], "errors": "billable_metric_not_found"},
        "2": {"params": batch[2], "errors": "billable_metric_not_found"},
    }
    assert Alert.objects.filter(external_subscription_id="sub_batch").count() == 0
