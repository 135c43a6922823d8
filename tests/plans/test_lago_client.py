"""lago-python-client 1.55.0, unchanged, against a live Tollgate: taxes, plans with charges,
add-ons, coupons and applied coupons, subscriptions (create, plan change, find, list, update,
terminate, cancel)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.add_on import AddOn
from lago_python_client.models.applied_coupon import AppliedCoupon
from lago_python_client.models.charge import Charge, Charges
from lago_python_client.models.coupon import Coupon, LimitationConfiguration
from lago_python_client.models.plan import Plan
from lago_python_client.models.subscription import Subscription
from lago_python_client.models.tax import Tax

from tests.factories.customers import make_api_key, make_customer
from tests.factories.metrics import make_metric

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture
def lago(live_server) -> Client:
    return Client(api_key=make_api_key().raw, api_url=live_server.url)


def test_catalog_through_the_lago_client(lago):
    api_calls = make_metric(code="api_calls")
    storage = make_metric(code="storage_gb", aggregation_type="sum_agg", field_name="gb")

    tax = lago.taxes.create(Tax(name="VAT", code="vat_20", rate=20.0, applied_to_organization=True))
    assert (tax.code, tax.rate, tax.applied_to_organization) == ("vat_20", 20.0, True)
    assert lago.taxes.update(Tax(rate=19.6), "vat_20").rate == 19.6

    plan = lago.plans.create(
        Plan(
            name="Startup",
            code="startup",
            interval="monthly",
            amount_cents=4900,
            amount_currency="USD",
            pay_in_advance=False,
            tax_codes=["vat_20"],
            charges=Charges(
                __root__=[
                    Charge(
                        billable_metric_id=str(api_calls.pk),
                        charge_model="graduated",
                        properties={
                            "graduated_ranges": [
                                {"from_value": 0, "to_value": 1000, "per_unit_amount": "0", "flat_amount": "0"},
                                {"from_value": 1001, "to_value": None, "per_unit_amount": "0.002", "flat_amount": "0"},
                            ]
                        },
                    ),
                    Charge(billable_metric_id=str(storage.pk), charge_model="standard", properties={"amount": "0.25"}),
                ]
            ),
        )
    )
    assert (plan.code, plan.amount_cents, plan.amount_currency) == ("startup", 4900, "USD")
    charges = plan.charges.__root__
    assert [c.billable_metric_code for c in charges] == ["api_calls", "storage_gb"]
    assert [t.code for t in plan.taxes.__root__] == ["vat_20"]

    updated = lago.plans.update(Plan(name="Startup 2", amount_cents=5900), "startup")
    assert (updated.name, updated.amount_cents, len(updated.charges.__root__)) == ("Startup 2", 5900, 2)
    assert lago.plans.find("startup").lago_id == plan.lago_id
    assert [p.code for p in lago.plans.find_all()["plans"]] == ["startup"]

    add_on = lago.add_ons.create(AddOn(name="Setup", code="setup", amount_cents=10000, amount_currency="USD"))
    assert (add_on.amount_cents, lago.add_ons.find("setup").code) == (10000, "setup")
    assert lago.add_ons.destroy("setup").code == "setup"

    coupon = lago.coupons.create(
        Coupon(
            name="Welcome",
            code="welcome",
            coupon_type="fixed_amount",
            amount_cents=1000,
            amount_currency="USD",
            frequency="once",
            expiration="no_expiration",
            reusable=False,
            applies_to=LimitationConfiguration(plan_codes=["startup"]),
        )
    )
    assert (coupon.amount_cents, coupon.plan_codes, coupon.limited_plans) == (1000, ["startup"], True)
    make_customer(external_id="acme")
    applied = lago.applied_coupons.create(AppliedCoupon(external_customer_id="acme", coupon_code="welcome"))
    assert (applied.coupon_code, applied.amount_cents_remaining, applied.status) == ("welcome", 1000, "active")
    assert lago.applied_coupons.find_all({"external_customer_id": "acme"})["meta"]["total_count"] == 1
    with pytest.raises(LagoApiError) as again:
        lago.applied_coupons.create(AppliedCoupon(external_customer_id="acme", coupon_code="welcome"))
    assert again.value.status_code == 422
    removed = lago.applied_coupons.destroy("acme", applied.lago_id)
    assert removed.status == "terminated"
    assert lago.coupons.destroy("welcome").terminated_at is not None

    with pytest.raises(LagoApiError) as missing:
        lago.plans.find("nope")
    assert missing.value.status_code == 404
    assert lago.taxes.destroy("vat_20").code == "vat_20"


def test_subscriptions_through_the_lago_client(lago):
    make_customer(external_id="acme")
    for code, cents in (("startup", 4900), ("premium", 9900)):
        lago.plans.create(Plan(name=code, code=code, interval="monthly", amount_cents=cents, amount_currency="USD"))

    sub = lago.subscriptions.create(
        Subscription(external_customer_id="acme", plan_code="startup", external_id="sub_acme", billing_time="calendar")
    )
    assert (sub.status, sub.plan_code, sub.external_customer_id) == ("active", "startup", "acme")
    assert sub.current_billing_period_started_at is not None

    upgraded = lago.subscriptions.create(
        Subscription(external_customer_id="acme", plan_code="premium", external_id="sub_acme")
    )
    assert (upgraded.plan_code, upgraded.previous_plan_code) == ("premium", "startup")
    downgrade = lago.subscriptions.create(
        Subscription(external_customer_id="acme", plan_code="startup", external_id="sub_acme")
    )
    assert (downgrade.plan_code, downgrade.next_plan_code) == ("premium", "startup")
    assert downgrade.downgrade_plan_date is not None

    found = lago.subscriptions.find("sub_acme")
    assert found.lago_id == upgraded.lago_id
    renamed = lago.subscriptions.update(Subscription(name="Main"), "sub_acme")
    assert renamed.name == "Main"
    listed = lago.subscriptions.find_all({"external_customer_id": "acme"})
    assert [s.external_id for s in listed["subscriptions"]] == ["sub_acme"]

    future = (timezone.now() + timedelta(days=10)).isoformat()
    later = lago.subscriptions.create(
        Subscription(external_customer_id="acme", plan_code="startup", external_id="sub_later", subscription_at=future)
    )
    assert later.status == "pending"
    assert lago.subscriptions.destroy("sub_later", options={"status": "pending"}).status == "canceled"

    terminated = lago.subscriptions.destroy("sub_acme")
    assert terminated.status == "terminated"
    with pytest.raises(LagoApiError) as gone:
        lago.subscriptions.destroy("sub_acme")
    assert gone.value.status_code == 404
