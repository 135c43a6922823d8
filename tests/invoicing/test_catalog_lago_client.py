"""lago-python-client 1.55.0 against a live Tollgate: plan fixed charges, a subscription's fixed
charge units, and a plan's usage thresholds and minimum commitment."""

from __future__ import annotations

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import Plan
from lago_python_client.models.fixed_charge import FixedCharge, FixedChargeProperties
from lago_python_client.models.plan import MinimumCommitment
from lago_python_client.models.usage_threshold import UsageThreshold, UsageThresholds

from plans.services import add_on_create
from tests.factories.invoicing import subscribe
from tests.factories.plans import make_plan

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def client(live_server, api_key) -> Client:
    return Client(api_key=api_key.raw, api_url=live_server.url)


def test_plan_and_subscription_fixed_charges(client):
    add_on_create(name="Seat", code="seat", amount_cents=1000, amount_currency="USD")
    plan = make_plan(code="team", amount_cents=0)
    created = client.plan_fixed_charges.create(
        "team",
        FixedCharge(add_on_code="seat", code="seats", units=5, properties=FixedChargeProperties(amount="10")),
    )
    assert (created.code, created.add_on_code, created.units, created.charge_model) == (
        "seats",
        "seat",
        5.0,
        "standard",
    )
    assert client.plan_fixed_charges.find("team", "seats").lago_id == created.lago_id
    updated = client.plan_fixed_charges.update("team", "seats", FixedCharge(units=6))
    assert updated.units == 6.0
    # lago-python-client 1.55.0's FindAllChildrenCommandMixin.find_all sends no Authorization
    # header (mixins.py): every server, Lago's included, answers 401. The route itself is tested
    # in tests/invoicing/test_fixed_charges.py.
    with pytest.raises(LagoApiError) as unauthenticated:
        client.plan_fixed_charges.find_all("team")
    assert unauthenticated.value.status_code == 401

    subscribe(plan=plan, external_id="sub_team")
    changed = client.subscription_fixed_charges.update("sub_team", "seats", FixedCharge(units=9))
    assert changed.units == 9.0
    assert client.subscription_fixed_charges.find("sub_team", "seats").units == 9.0

    assert client.plan_fixed_charges.destroy("team", "seats").code == "seats"
    with pytest.raises(LagoApiError) as missing:
        client.plan_fixed_charges.find("team", "seats")
    assert missing.value.status_code == 404


def test_plan_usage_thresholds_and_minimum_commitment(client):
    created = client.plans.create(
        Plan(
            name="Progressive",
            code="progressive",
            interval="monthly",
            amount_cents=0,
            amount_currency="USD",
            usage_thresholds=UsageThresholds(
                __root__=[
                    UsageThreshold(amount_cents=2000, threshold_display_name="First"),
                    UsageThreshold(amount_cents=5000, recurring=True),
                ]
            ),
            minimum_commitment=MinimumCommitment(amount_cents=10000, invoice_display_name="Floor"),
        )
    )
    thresholds = created.usage_thresholds.__root__
    assert [(t.amount_cents, t.recurring) for t in thresholds] == [(2000, False), (5000, True)]
    assert (created.minimum_commitment.amount_cents, created.minimum_commitment.invoice_display_name) == (
        10000,
        "Floor",
    )
