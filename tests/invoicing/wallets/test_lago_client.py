"""lago-python-client 1.55.0, unchanged, against a live Tollgate: every wallet route
(wallets, customers.wallets with metadata, wallet_transactions with consumptions, fundings and
payment_url)."""

from __future__ import annotations

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.wallet import AppliesTo, RecurringTransactionRule, RecurringTransactionRuleList, Wallet
from lago_python_client.models.wallet_transaction import WalletTransaction

from invoicing.models import Invoice, InvoiceType
from tests.factories.customers import make_api_key, make_customer
from tests.factories.plans import metric

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lago(live_server, settings) -> Client:
    settings.STRIPE_TEST_SECRET_KEY = ""
    settings.STRIPE_LIVE_SECRET_KEY = ""
    return Client(api_key=make_api_key().raw, api_url=live_server.url)


def test_wallets_through_the_lago_client(lago):
    make_customer(external_id="lago-wallets", currency="USD")
    metric("api_calls")

    created = lago.wallets.create(
        Wallet(
            external_customer_id="lago-wallets",
            name="Prepaid",
            rate_amount="0.5",
            granted_credits="10",
            paid_credits="20",
            priority=3,
            applies_to=AppliesTo(fee_types=["charge"], billable_metric_codes=["api_calls"]),
            recurring_transaction_rules=RecurringTransactionRuleList(
                __root__=[RecurringTransactionRule(trigger="threshold", threshold_credits="2", granted_credits="5")]
            ),
            metadata={"team": "growth"},
        )
    )
    assert (created.status, created.currency, created.rate_amount, created.priority) == ("active", "USD", "0.5", 3)
    # Granted credits count at once; the 20 paid ones when their credit invoice is paid.
    assert (created.credits_balance, created.balance_cents) == ("10", 500)
    assert created.applies_to.fee_types == ["charge"] and created.applies_to.billable_metric_codes == ["api_calls"]
    assert created.recurring_transaction_rules.__root__[0].trigger == "threshold"
    assert created.code.startswith("prepaid_")

    found = lago.wallets.find(created.lago_id)
    listed = lago.wallets.find_all({"external_customer_id": "lago-wallets"})
    updated = lago.wallets.update(Wallet(name="Renamed", priority=1), created.lago_id)
    assert found.lago_id == created.lago_id
    assert [w.lago_id for w in listed["wallets"]] == [created.lago_id] and listed["meta"]["total_count"] == 1
    assert (updated.name, updated.priority) == ("Renamed", 1)

    assert lago.wallets.replace_metadata(created.lago_id, {"a": "1"}) == {"a": "1"}
    assert lago.wallets.merge_metadata(created.lago_id, {"b": "2"}) == {"a": "1", "b": "2"}
    assert lago.wallets.delete_metadata_key(created.lago_id, "a") == {"b": "2"}
    lago.wallets.delete_all_metadata(created.lago_id)

    transactions = lago.wallet_transactions.find_all(created.lago_id)["wallet_transactions"]
    by_kind = {t.transaction_status: t for t in transactions}
    assert (by_kind["purchased"].status, by_kind["granted"].status) == ("pending", "settled")
    credit_invoice = Invoice.objects.get(pk=by_kind["purchased"].lago_invoice_id)
    assert (credit_invoice.invoice_type, credit_invoice.total_amount) == (InvoiceType.CREDIT, 10)

    made = lago.wallet_transactions.create(
        WalletTransaction(wallet_id=created.lago_id, granted_credits="4", voided_credits="1")
    )["wallet_transactions"]
    assert [(t.transaction_type, t.transaction_status, t.credit_amount) for t in made] == [
        ("inbound", "granted", "4"),
        ("outbound", "voided", "1"),
    ]
    fundings = lago.wallet_transactions.fundings(made[1].lago_id)["wallet_transaction_fundings"]
    assert [(f.amount_cents, f.wallet_transaction.transaction_status) for f in fundings] == [(50, "granted")]
    consumptions = lago.wallet_transactions.consumptions(fundings[0].wallet_transaction.lago_id)
    assert [c.amount_cents for c in consumptions["wallet_transaction_consumptions"]] == [50]

    with pytest.raises(LagoApiError) as no_stripe:
        lago.wallet_transactions.payment_url(by_kind["purchased"].lago_id)
    assert no_stripe.value.status_code == 422
    assert no_stripe.value.response["code"] == "payment_provider_not_configured"

    with pytest.raises(LagoApiError) as too_many:
        for i in range(6):
            lago.customers.wallets.create("lago-wallets", Wallet(rate_amount="1", code=f"w{i}", name=f"w{i}"))
    assert too_many.value.status_code == 422  # the 7th active wallet: wallet_limit_reached

    nested = lago.customers.wallets.find("lago-wallets", "w0")
    nested_all = lago.customers.wallets.find_all("lago-wallets")
    nested_updated = lago.customers.wallets.update("lago-wallets", "w0", Wallet(name="w0 renamed"))
    assert lago.customers.wallets.metadata.replace("lago-wallets", "w0", {"k": "v"}) == {"k": "v"}
    assert lago.customers.wallets.metadata.merge("lago-wallets", "w0", {"l": "w"}) == {"k": "v", "l": "w"}
    assert lago.customers.wallets.metadata.delete_key("lago-wallets", "w0", "k") == {"l": "w"}
    lago.customers.wallets.metadata.delete_all("lago-wallets", "w0")
    nested_terminated = lago.customers.wallets.destroy("lago-wallets", "w0")
    assert nested.code == "w0" and nested_all["meta"]["total_count"] == 6
    assert (nested_updated.name, nested_terminated.status) == ("w0 renamed", "terminated")

    terminated = lago.wallets.destroy(created.lago_id)
    assert (terminated.status, terminated.credits_balance, terminated.balance_cents) == ("terminated", "0", 0)
    with pytest.raises(LagoApiError) as refused:
        lago.wallet_transactions.create(WalletTransaction(wallet_id=created.lago_id, granted_credits="1"))
    assert refused.value.status_code == 422


def test_unknown_customer_and_bad_values_answer_lagos_codes(lago, api):
    make_customer(external_id="lago-w-codes", currency="USD")
    missing = api.post("/api/v1/wallets", {"wallet": {"external_customer_id": "nobody", "rate_amount": "1"}})
    assert missing.status_code == 422 and missing.json()["error_details"] == {"customer": ["customer_not_found"]}
    bad = api.post(
        "/api/v1/wallets",
        {
            "wallet": {
                "external_customer_id": "lago-w-codes",
                "rate_amount": "1",
                "paid_credits": "abc",
                "granted_credits": "-1",
            }
        },
    )
    assert bad.json()["error_details"] == {
        "paid_credits": ["invalid_paid_credits"],
        "granted_credits": ["invalid_granted_credits"],
    }
    out_of_range = api.post(
        "/api/v1/wallets", {"wallet": {"external_customer_id": "lago-w-codes", "rate_amount": "1", "priority": 51}}
    )
    assert out_of_range.json()["error_details"] == {"priority": ["value_is_out_of_range"]}
    assert api.get("/api/v1/wallets/not-a-uuid").json()["code"] == "wallet_not_found"


def test_wallet_alerts_through_the_lago_client(lago):
    # lago-python-client's customers.wallets.alerts (CustomerWalletAlertClient): every route.
    from lago_python_client.models.alert import Alert, AlertsList, AlertThreshold, AlertThresholdList

    from invoicing.models import Alert as AlertRow

    customer = make_customer(external_id="lago-alerts", currency="USD")
    from tests.factories.wallets import make_wallet

    make_wallet(customer=customer, code="prepaid", granted_credits="100")
    alerts = lago.customers.wallets.alerts
    created = alerts.create(
        "lago-alerts",
        "prepaid",
        Alert(
            alert_type="wallet_balance_amount",
            code="low",
            name="Low",
            thresholds=AlertThresholdList(__root__=[AlertThreshold(code="warn", value="5000")]),
        ),
    )
    assert (created.alert_type, created.direction, created.wallet_code, created.previous_value) == (
        "wallet_balance_amount",
        "decreasing",
        "prepaid",
        "10000",
    )
    assert created.external_subscription_id is None
    assert alerts.find("lago-alerts", "prepaid", "low").lago_id == created.lago_id
    updated = alerts.update(
        "lago-alerts",
        "prepaid",
        "low",
        Alert(thresholds=AlertThresholdList(__root__=[AlertThreshold(value="3000"), AlertThreshold(value="1000")])),
    )
    assert [t.value for t in updated.thresholds.__root__] == ["1000", "3000"]
    batch = alerts.create_batch(
        "lago-alerts",
        "prepaid",
        AlertsList(
            alerts=[
                Alert(
                    alert_type="wallet_credits_ongoing_balance",
                    code="ongoing",
                    thresholds=AlertThresholdList(__root__=[AlertThreshold(value="10")]),
                )
            ]
        ),
    )
    assert [a.code for a in batch["alerts"]] == ["ongoing"]
    listed = alerts.find_all("lago-alerts", "prepaid")
    assert [a.code for a in listed["alerts"]] == ["low", "ongoing"]
    assert alerts.destroy("lago-alerts", "prepaid", "low").code == "low"
    with pytest.raises(LagoApiError) as refused:
        alerts.create(
            "lago-alerts",
            "prepaid",
            Alert(
                alert_type="current_usage_amount",
                code="usage",
                thresholds=AlertThresholdList(__root__=[AlertThreshold(value="1")]),
            ),
        )
    assert refused.value.status_code == 422
    with pytest.raises(LagoApiError) as missing:
        alerts.find("lago-alerts", "nope", "low")
    assert missing.value.status_code == 404
    alerts.destroy_all("lago-alerts", "prepaid")
    assert AlertRow.objects.filter(deleted_at__isnull=True).count() == 0
