"""lago-python-client 1.55.0, unchanged, against a live Tollgate: a plan's charges by code and
their filters, cascade_updates, plan metadata, plan_overrides on subscriptions and a
subscription's own charges (Lago's premium overrides, free here)."""

from __future__ import annotations

import httpx
import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.charge import (
    Charge,
    ChargeFilter,
    ChargeOverrides,
    Charges,
    ChargesOverrides,
)
from lago_python_client.models.minimum_commitment import MinimumCommitmentOverrides
from lago_python_client.models.plan import Plan, PlanOverrides
from lago_python_client.models.subscription import Subscription

from tests.factories.customers import make_api_key, make_customer
from tests.factories.metrics import make_metric

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture
def key() -> str:
    return make_api_key().raw


@pytest.fixture
def lago(live_server, key) -> Client:
    return Client(api_key=key, api_url=live_server.url)


def _list(live_server, key: str, path: str) -> dict:
    # The client's FindAllChildrenCommandMixin.find_all sends no Authorization header (a bug of
    # lago-python-client 1.55.0: Lago answers it 401 too), so list routes are read with the key here.
    answer = httpx.get(f"{live_server.url}/api/v1/{path}", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _startup(lago: Client, metric_id: str) -> None:
    lago.plans.create(
        Plan(
            name="Startup",
            code="startup",
            interval="monthly",
            amount_cents=4900,
            amount_currency="USD",
            charges=Charges(
                __root__=[Charge(billable_metric_id=metric_id, charge_model="standard", properties={"amount": "0.05"})]
            ),
        )
    )


def test_plan_charges_and_filters_through_the_lago_client(lago, live_server, key):
    api_calls = make_metric(code="api_calls", filters={"region": ["eu", "us"]})
    _startup(lago, str(api_calls.pk))
    assert [c.code for c in lago.plans.find("startup").charges.__root__] == ["api_calls"]

    created = lago.plan_charges.create(
        "startup",
        Charge(
            billable_metric_id=str(api_calls.pk),
            charge_model="graduated",
            accepts_target_wallet=True,
            properties={
                "graduated_ranges": [
                    {"from_value": 0, "to_value": 10, "per_unit_amount": "0", "flat_amount": "0"},
                    {"from_value": 11, "to_value": None, "per_unit_amount": "0.01", "flat_amount": "0"},
                ]
            },
        ),
    )
    # Deduplicated from the metric's code; accepts_target_wallet answered with Lago's neutral false.
    assert (created.code, created.charge_model, created.accepts_target_wallet) == ("api_calls_2", "graduated", False)
    assert lago.plan_charges.find("startup", "api_calls_2").lago_id == created.lago_id
    with pytest.raises(LagoApiError) as unauthenticated:
        lago.plan_charges.find_all("startup")
    assert unauthenticated.value.status_code == 401
    listed = _list(live_server, key, "plans/startup/charges")
    assert ([c["code"] for c in listed["charges"]], listed["meta"]["total_count"]) == (["api_calls", "api_calls_2"], 2)

    updated = lago.plan_charges.update(
        "startup", "api_calls", Charge(code="calls", properties={"amount": "0.07"}, invoice_display_name="Calls")
    )
    assert (updated.code, updated.properties, updated.invoice_display_name) == ("calls", {"amount": "0.07"}, "Calls")
    with pytest.raises(LagoApiError) as taken:
        lago.plan_charges.create("startup", Charge(billable_metric_id=str(api_calls.pk), code="calls"))
    assert (taken.value.status_code, taken.value.response["error_details"]) == (422, {"code": ["value_already_exist"]})

    eu = lago.plans.create_charge_filter(
        "startup", "calls", ChargeFilter(values={"region": ["eu"]}, properties={"amount": "0.09"})
    )
    assert (eu.values, eu.properties) == ({"region": ["eu"]}, {"amount": "0.09"})
    assert lago.plans.find_charge_filter("startup", "calls", eu.lago_id).lago_id == eu.lago_id
    moved = lago.plans.update_charge_filter(
        "startup", "calls", eu.lago_id, ChargeFilter(values={"region": ["us"]}, invoice_display_name="US")
    )
    assert (moved.lago_id, moved.values, moved.invoice_display_name) == (eu.lago_id, {"region": ["us"]}, "US")
    filters = lago.plans.find_all_charge_filters("startup", "calls")
    assert [f.lago_id for f in filters["filters"]] == [eu.lago_id]
    with pytest.raises(LagoApiError) as bad_values:
        lago.plans.create_charge_filter("startup", "calls", ChargeFilter(values={"planet": ["mars"]}))
    assert bad_values.value.response["error_details"] == {"filters": ["invalid_filter_values"]}
    assert lago.plans.destroy_charge_filter("startup", "calls", eu.lago_id).lago_id == eu.lago_id
    assert lago.plans.find_all_charge_filters("startup", "calls")["filters"] == []

    assert lago.plan_charges.destroy("startup", "api_calls_2").code == "api_calls_2"
    with pytest.raises(LagoApiError) as gone:
        lago.plan_charges.find("startup", "api_calls_2")
    assert (gone.value.status_code, gone.value.response["code"]) == (404, "charge_not_found")


def test_plan_metadata_through_the_lago_client(lago):
    lago.plans.create(Plan(name="P", code="p", interval="monthly", amount_cents=100, amount_currency="USD"))
    assert lago.plans.replace_metadata("p", {"crm": "42", "tier": "gold"}) == {"crm": "42", "tier": "gold"}
    assert lago.plans.merge_metadata("p", {"tier": "silver", "note": None}) == {
        "crm": "42",
        "tier": "silver",
        "note": None,
    }
    assert lago.plans.find("p").metadata == {"crm": "42", "tier": "silver", "note": None}
    assert lago.plans.delete_metadata_key("p", "crm") == {"tier": "silver", "note": None}
    assert lago.plans.delete_all_metadata("p") is None
    with pytest.raises(LagoApiError) as missing:
        lago.plans.delete_metadata_key("p", "tier")
    assert (missing.value.status_code, missing.value.response["code"]) == (404, "metadata_not_found")


def test_overrides_and_subscription_charges_through_the_lago_client(lago, live_server, key):
    api_calls = make_metric(code="api_calls")
    _startup(lago, str(api_calls.pk))
    charge_id = lago.plans.find("startup").charges.__root__[0].lago_id
    make_customer(external_id="acme")
    make_customer(external_id="globex")
    plain = lago.subscriptions.create(Subscription(external_customer_id="globex", plan_code="startup", external_id="g"))
    special = lago.subscriptions.create(
        Subscription(
            external_customer_id="acme",
            plan_code="startup",
            external_id="a",
            plan_overrides=PlanOverrides(
                amount_cents=1900,
                trial_period=3,
                minimum_commitment=MinimumCommitmentOverrides(amount_cents=5000),
                charges=ChargesOverrides(__root__=[ChargeOverrides(id=charge_id, properties={"amount": "0.02"})]),
            ),
        )
    )
    # As Lago's SubscriptionSerializer: plan_code stays the plan's, plan_amount_cents is the override's.
    # (the client's SubscriptionResponse types plan_amount_cents as a string)
    assert (special.plan_code, special.plan_amount_cents, plain.plan_amount_cents) == ("startup", "1900", "4900")
    found = _list(live_server, key, "subscriptions/a")["subscription"]
    parent_id = lago.plans.find("startup").lago_id
    assert (found["plan"]["parent_id"], found["plan"]["trial_period"]) == (parent_id, 3.0)
    assert found["plan"]["minimum_commitment"]["amount_cents"] == 5000
    assert found["plan"]["charges"][0]["lago_parent_id"] == charge_id

    charge = lago.subscription_charges.find("a", "api_calls")
    assert (charge.properties, charge.code) == ({"amount": "0.02"}, "api_calls")
    assert lago.subscription_charges.find("g", "api_calls").properties == {"amount": "0.05"}
    assert [c["code"] for c in _list(live_server, key, "subscriptions/g/charges")["charges"]] == ["api_calls"]
    changed = lago.subscription_charges.update("g", "api_calls", Charge(properties={"amount": "0.04"}))
    assert changed.properties == {"amount": "0.04"}
    # Globex now has its own copy; the plan keeps its price.
    assert lago.plans.find("startup").charges.__root__[0].properties == {"amount": "0.05"}
    assert lago.subscriptions.find("g").plan_amount_cents == "4900"
    with pytest.raises(LagoApiError) as bad:
        lago.subscription_charges.update("g", "api_calls", Charge(properties={"amount": "x"}))
    assert bad.value.status_code == 422
    with pytest.raises(LagoApiError) as missing:
        lago.subscription_charges.find("g", "nope")
    assert (missing.value.status_code, missing.value.response["code"]) == (404, "charge_not_found")

    renamed = lago.subscriptions.update(Subscription(plan_overrides=PlanOverrides(amount_cents=2900)), "a")
    assert renamed.plan_amount_cents == "2900"

    # cascade_updates=false: live subscriptions keep their terms, the plan changes for new ones.
    make_customer(external_id="hooli")
    lago.subscriptions.create(Subscription(external_customer_id="hooli", plan_code="startup", external_id="h"))
    lago.plans.update(Plan(amount_cents=9900, cascade_updates=False), "startup")
    kept = lago.subscriptions.find("h")
    assert (kept.plan_code, kept.plan_amount_cents) == ("startup", "4900")
    make_customer(external_id="initech")
    newcomer = lago.subscriptions.create(
        Subscription(external_customer_id="initech", plan_code="startup", external_id="i")
    )
    assert newcomer.plan_amount_cents == "9900"
