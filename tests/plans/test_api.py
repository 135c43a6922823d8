"""The catalog and subscriptions API: Lago's paths, envelopes, shapes and error codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from plans.models import AppliedCoupon, Plan, Subscription
from tests.factories.customers import make_customer
from tests.factories.metrics import make_metric
from tests.factories.plans import make_coupon, make_plan, make_subscription, make_tax, metric, standard_charge

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def plan_body(**overrides):
    body = {
        "name": "Startup",
        "code": "startup",
        "interval": "monthly",
        "amount_cents": 4900,
        "amount_currency": "USD",
        "pay_in_advance": False,
        "charges": [
            {
                "billable_metric_id": str(metric("api_calls").pk),
                "charge_model": "graduated",
                "properties": {
                    "graduated_ranges": [
                        {"from_value": 0, "to_value": 1000, "per_unit_amount": "0", "flat_amount": "0"},
                        {"from_value": 1001, "to_value": None, "per_unit_amount": "0.002", "flat_amount": "0"},
                    ]
                },
            }
        ],
    }
    body.update(overrides)
    return {"plan": body}


def test_anonymous_is_401(anon_api):
    assert anon_api.get("/api/v1/plans").status_code == 401


def test_plan_crud(api):
    make_tax(code="vat_20")
    created = api.post("/api/v1/plans", plan_body(tax_codes=["vat_20"]))
    assert created.status_code == 200, created.json()
    plan = created.json()["plan"]
    assert plan["code"] == "startup"
    assert (plan["amount_cents"], plan["amount_currency"], plan["interval"]) == (4900, "USD", "monthly")
    assert plan["trial_period"] == 0.0 and plan["bill_charges_monthly"] is None
    assert [t["code"] for t in plan["taxes"]] == ["vat_20"]
    (charge,) = plan["charges"]
    assert charge["billable_metric_code"] == "api_calls"
    assert charge["lago_billable_metric_id"] == str(metric("api_calls").pk)
    assert charge["charge_model"] == "graduated"
    assert charge["properties"]["graduated_ranges"][1]["per_unit_amount"] == "0.002"
    assert (charge["min_amount_cents"], charge["filters"], charge["taxes"]) == (0, [], [])

    found = api.get("/api/v1/plans/startup").json()["plan"]
    assert found["lago_id"] == plan["lago_id"]
    assert found["active_subscriptions_count"] == 0

    listed = api.get("/api/v1/plans").json()
    assert [p["code"] for p in listed["plans"]] == ["startup"]
    assert listed["meta"]["total_count"] == 1

    updated = api.put(
        "/api/v1/plans/startup",
        {"plan": {"name": "Startup v2", "charges": [{"id": charge["lago_id"], **standard_charge(amount="0.01")}]}},
    )
    assert updated.status_code == 200, updated.json()
    body = updated.json()["plan"]
    assert body["name"] == "Startup v2"
    assert body["charges"][0]["lago_id"] == charge["lago_id"]
    assert body["charges"][0]["properties"] == {"amount": "0.01"}

    deleted = api.delete("/api/v1/plans/startup")
    assert deleted.status_code == 200 and deleted.json()["plan"]["code"] == "startup"
    assert api.get("/api/v1/plans/startup").json() == {"status": 404, "error": "Not Found", "code": "plan_not_found"}


@pytest.mark.parametrize(
    ("overrides", "status", "expected"),
    [
        ({"code": "startup"}, 422, {"code": ["value_already_exist"]}),
        ({"interval": "daily"}, 422, {"interval": ["value_is_invalid"]}),
        ({"amount_cents": "lots"}, 422, {"amount_cents": ["value_is_invalid"]}),
        ({"amount_cents": None}, 422, {"amount_cents": ["value_is_mandatory"]}),
        ({"charges": "bad properties"}, 422, {"amount": ["invalid_amount"]}),
        ({"charges": "nope"}, 422, {"charges": ["value_is_invalid"]}),
        ({"tax_codes": ["missing"]}, 404, "tax_not_found"),
        ({"charges": [{"billable_metric_id": "not-a-uuid"}]}, 404, "billable_metric_not_found"),
    ],
)
def test_plan_errors(api, overrides, status, expected):
    api.post("/api/v1/plans", plan_body())
    if overrides.get("charges") == "bad properties":
        overrides = {"charges": [{**standard_charge(), "properties": {"amount": 1}}]}
    response = api.post("/api/v1/plans", plan_body(**{"code": "x", **overrides}))
    assert response.status_code == status, response.json()
    if status == 422:
        assert response.json()["code"] == "validation_errors"
        assert response.json()["error_details"] == expected
    else:
        assert response.json()["code"] == expected
    assert Plan.objects.count() == 1


def test_missing_root_key_is_400(api):
    response = api.post("/api/v1/plans", {"name": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "BadRequest: param is missing or the value is empty: plan"


def test_attached_plan_refuses_interval_change(api):
    api.post("/api/v1/plans", plan_body())
    make_subscription(plan=Plan.live.get(code="startup"), customer=make_customer())
    response = api.put("/api/v1/plans/startup", {"plan": {"interval": "yearly"}})
    assert response.status_code == 422
    assert response.json()["error_details"] == {"interval": ["attached_to_subscriptions"]}
    assert api.get("/api/v1/plans/startup").json()["plan"]["active_subscriptions_count"] == 1


def test_charge_filters_in_the_answer(api):
    make_metric(code="api_calls", filters={"region": ["eu", "us"]})
    charge = {
        **standard_charge(),
        "filters": [{"values": {"region": ["eu"]}, "properties": {"amount": "0.2"}, "invoice_display_name": "EU"}],
    }
    response = api.post("/api/v1/plans", plan_body(charges=[charge]))
    assert response.status_code == 200, response.json()
    (filter_,) = response.json()["plan"]["charges"][0]["filters"]
    assert filter_["values"] == {"region": ["eu"]}
    assert filter_["properties"] == {"amount": "0.2"}
    assert filter_["invoice_display_name"] == "EU"


# ---------------------------------------------------------------------------------------------
# Taxes, add-ons, coupons


def test_tax_crud(api):
    response = api.post("/api/v1/taxes", {"tax": {"name": "VAT", "code": "vat_20", "rate": 20.0}})
    assert response.status_code == 200, response.json()
    tax = response.json()["tax"]
    assert (tax["rate"], tax["applied_to_organization"], tax["description"]) == (20.0, False, None)
    assert api.post("/api/v1/taxes", {"tax": {"name": "VAT", "code": "vat_20", "rate": 20}}).json()[
        "error_details"
    ] == {"code": ["value_already_exist"]}
    updated = api.put("/api/v1/taxes/vat_20", {"tax": {"rate": "19.6", "applied_to_organization": True}}).json()
    assert (updated["tax"]["rate"], updated["tax"]["applied_to_organization"]) == (19.6, True)
    assert api.get("/api/v1/taxes").json()["meta"]["total_count"] == 1
    assert api.delete("/api/v1/taxes/vat_20").json()["tax"]["code"] == "vat_20"
    assert api.get("/api/v1/taxes/vat_20").status_code == 404


def test_add_on_crud(api):
    body = {"add_on": {"name": "Setup", "code": "setup", "amount_cents": 19999, "amount_currency": "EUR"}}
    add_on = api.post("/api/v1/add_ons", body).json()["add_on"]
    assert (add_on["amount_cents"], add_on["amount_currency"], add_on["taxes"]) == (19999, "EUR", [])
    assert api.put("/api/v1/add_ons/setup", {"add_on": {"amount_cents": 500}}).json()["add_on"]["amount_cents"] == 500
    assert api.get("/api/v1/add_ons").json()["add_ons"][0]["code"] == "setup"
    assert api.delete("/api/v1/add_ons/setup").status_code == 200
    assert api.get("/api/v1/add_ons/setup").json()["code"] == "add_on_not_found"


def test_coupon_crud_and_rules(api):
    make_plan()
    body = {
        "coupon": {
            "name": "Welcome",
            "code": "welcome",
            "coupon_type": "percentage",
            "percentage_rate": 12.5,
            "frequency": "recurring",
            "frequency_duration": 3,
            "expiration": "time_limit",
            "expiration_at": (timezone.now() + timedelta(days=30)).isoformat(),
            "applies_to": {"plan_codes": ["startup"]},
        }
    }
    response = api.post("/api/v1/coupons", body)
    assert response.status_code == 200, response.json()
    coupon = response.json()["coupon"]
    assert (coupon["percentage_rate"], coupon["frequency_duration"]) == (12.5, 3)
    assert (coupon["limited_plans"], coupon["plan_codes"], coupon["amount_cents"]) == (True, ["startup"], None)
    missing = {"coupon": {"name": "X", "code": "x", "coupon_type": "fixed_amount"}}
    assert api.post("/api/v1/coupons", missing).json()["error_details"] == {
        "amount_cents": ["value_is_mandatory"],
        "amount_currency": ["value_is_mandatory"],
    }
    recurring = {
        "coupon": {
            "name": "X",
            "code": "x",
            "coupon_type": "percentage",
            "percentage_rate": 5,
            "frequency": "recurring",
        }
    }
    assert api.post("/api/v1/coupons", recurring).json()["error_details"] == {
        "frequency_duration": ["value_is_mandatory"]
    }
    past = {
        "coupon": {
            "name": "X",
            "code": "x",
            "coupon_type": "percentage",
            "percentage_rate": 5,
            "expiration": "time_limit",
            "expiration_at": "2001-01-01T00:00:00Z",
        }
    }
    assert api.post("/api/v1/coupons", past).json()["error_details"] == {"expiration_at": ["invalid_date"]}
    renamed = api.put("/api/v1/coupons/welcome", {"coupon": {"name": "Hello"}}).json()["coupon"]
    assert renamed["name"] == "Hello" and renamed["percentage_rate"] == 12.5
    assert api.delete("/api/v1/coupons/welcome").json()["coupon"]["terminated_at"] is not None
    assert api.get("/api/v1/coupons/welcome").status_code == 404


def test_applied_coupon_apply_list_and_remove(api):
    customer = make_customer(external_id="acme")
    make_coupon(code="welcome", amount_cents=1000, amount_currency="USD", reusable=False)
    body = {"applied_coupon": {"external_customer_id": "acme", "coupon_code": "welcome", "amount_cents": 500}}
    response = api.post("/api/v1/applied_coupons", body)
    assert response.status_code == 200, response.json()
    applied = response.json()["applied_coupon"]
    assert (applied["coupon_code"], applied["external_customer_id"], applied["status"]) == ("welcome", "acme", "active")
    assert (applied["amount_cents"], applied["amount_cents_remaining"], applied["amount_currency"]) == (500, 500, "USD")
    assert applied["lago_customer_id"] == str(customer.pk)
    again = api.post("/api/v1/applied_coupons", body)
    assert (again.status_code, again.json()["code"]) == (422, "coupon_is_not_reusable")
    assert api.get("/api/v1/applied_coupons?external_customer_id=acme").json()["meta"]["total_count"] == 1
    url = f"/api/v1/customers/acme/applied_coupons/{applied['lago_id']}"
    removed = api.delete(url).json()["applied_coupon"]
    assert removed["status"] == "terminated" and removed["terminated_at"]
    assert api.delete("/api/v1/customers/acme/applied_coupons/nope").json()["code"] == "applied_coupon_not_found"
    unknown = {"applied_coupon": {"external_customer_id": "nobody", "coupon_code": "welcome"}}
    assert api.post("/api/v1/applied_coupons", unknown).json()["code"] == "customer_not_found"


def test_fixed_coupon_in_another_currency_is_refused(api):
    make_customer(external_id="acme", currency="EUR")
    make_coupon(code="usd", amount_currency="USD")
    body = {"applied_coupon": {"external_customer_id": "acme", "coupon_code": "usd"}}
    response = api.post("/api/v1/applied_coupons", body)
    assert (response.status_code, response.json()["code"]) == (422, "currencies_does_not_match")
    assert not AppliedCoupon.objects.exists()


# ---------------------------------------------------------------------------------------------
# Subscriptions


def subscription_body(**overrides):
    body = {"external_customer_id": "acme", "plan_code": "startup", "external_id": "sub_acme"}
    body.update(overrides)
    return {"subscription": body}


def test_subscription_create_show_list_terminate(api):
    make_customer(external_id="acme")
    make_plan()
    response = api.post("/api/v1/subscriptions", subscription_body(name="Main"))
    assert response.status_code == 200, response.json()
    sub = response.json()["subscription"]
    assert (sub["status"], sub["plan_code"], sub["external_customer_id"], sub["name"]) == (
        "active",
        "startup",
        "acme",
        "Main",
    )
    assert sub["billing_time"] == "calendar"
    assert (sub["plan_amount_cents"], sub["plan_amount_currency"]) == (4900, "USD")
    # The current period is day-aligned: it opens at the start day's midnight (UTC here).
    assert sub["current_billing_period_started_at"] == sub["started_at"][:10] + "T00:00:00Z"
    assert sub["current_billing_period_ending_at"].endswith("T23:59:59Z")
    assert sub["plan"]["code"] == "startup"

    assert api.get("/api/v1/subscriptions/sub_acme").json()["subscription"]["lago_id"] == sub["lago_id"]
    listed = api.get("/api/v1/subscriptions?external_customer_id=acme").json()
    assert [row["external_id"] for row in listed["subscriptions"]] == ["sub_acme"]
    assert api.get("/api/v1/subscriptions?plan_code=other").json()["subscriptions"] == []

    terminated = api.delete("/api/v1/subscriptions/sub_acme").json()["subscription"]
    assert terminated["status"] == "terminated" and terminated["terminated_at"]
    assert api.get("/api/v1/subscriptions").json()["subscriptions"] == []  # active only by default
    both = api.get("/api/v1/subscriptions?status[]=terminated&status[]=active").json()
    assert [row["status"] for row in both["subscriptions"]] == ["terminated"]
    assert api.delete("/api/v1/subscriptions/sub_acme").json()["code"] == "subscription_not_found"


def test_subscription_errors(api):
    make_customer(external_id="acme")
    make_plan()
    make_plan(code="startup_jpy", amount_currency="JPY", amount_cents=5000)
    assert api.post("/api/v1/subscriptions", subscription_body(external_customer_id="x")).json()["code"] == (
        "customer_not_found"
    )
    assert api.post("/api/v1/subscriptions", subscription_body(plan_code="x")).json()["code"] == "plan_not_found"
    missing = api.post("/api/v1/subscriptions", {"subscription": {"external_id": "s"}})
    assert missing.json()["error_details"] == {
        "external_customer_id": ["value_is_mandatory"],
        "plan_code": ["value_is_mandatory"],
    }
    bad_date = api.post("/api/v1/subscriptions", subscription_body(subscription_at="yesterday"))
    assert bad_date.json()["error_details"] == {"subscription_at": ["invalid_date"]}
    bad_time = api.post("/api/v1/subscriptions", subscription_body(billing_time="sometimes"))
    assert bad_time.json()["error_details"] == {"billing_time": ["value_is_invalid"]}
    assert api.post("/api/v1/subscriptions", subscription_body()).status_code == 200
    currency = api.post("/api/v1/subscriptions", subscription_body(external_id="s2", plan_code="startup_jpy"))
    assert currency.status_code == 422
    assert currency.json() == {"status": 422, "error": "Unprocessable Entity", "code": "currencies_does_not_match"}
    # Lago's premium plan_overrides are free here: the subscription gets its own copy of the plan.
    overrides = api.post("/api/v1/subscriptions", subscription_body(plan_overrides={"amount_cents": 1}))
    assert (overrides.status_code, overrides.json()["subscription"]["plan_amount_cents"]) == (200, 1)
    bad_override = api.post("/api/v1/subscriptions", subscription_body(plan_overrides={"amount_cents": -1}))
    assert bad_override.json()["error_details"] == {"amount_cents": ["value_is_invalid"]}


def test_pending_subscription_update_and_cancel(api):
    make_customer(external_id="acme")
    make_plan()
    future = (timezone.now() + timedelta(days=5)).replace(microsecond=0)
    sub = api.post("/api/v1/subscriptions", subscription_body(subscription_at=future.isoformat())).json()[
        "subscription"
    ]
    assert (sub["status"], sub["started_at"], sub["current_billing_period_started_at"]) == ("pending", None, None)
    assert api.get("/api/v1/subscriptions?status[]=pending").json()["meta"]["total_count"] == 1
    later = future + timedelta(days=1)
    updated = api.put(
        "/api/v1/subscriptions/sub_acme?status=pending",
        {"subscription": {"subscription_at": later.isoformat(), "name": "Later"}},
    ).json()["subscription"]
    assert updated["subscription_at"] == later.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert updated["name"] == "Later"
    assert api.delete("/api/v1/subscriptions/sub_acme").json()["code"] == "subscription_not_found"
    canceled = api.delete("/api/v1/subscriptions/sub_acme?status=pending").json()["subscription"]
    assert canceled["status"] == "canceled" and canceled["canceled_at"]


def test_subscription_update_sets_keeps_and_clears_ending_at(api):
    make_customer(external_id="acme")
    make_plan()
    api.post("/api/v1/subscriptions", subscription_body())
    ending = (timezone.now() + timedelta(days=40)).replace(microsecond=0)

    def put(body):
        return api.put("/api/v1/subscriptions/sub_acme", {"subscription": body}).json()["subscription"]

    assert put({"ending_at": ending.isoformat()})["ending_at"] == ending.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert put({"name": "Renamed"})["ending_at"] is not None  # absent: kept
    assert put({"ending_at": None})["ending_at"] is None  # null: cleared


def test_downgrade_shows_next_plan_and_date(api):
    make_customer(external_id="acme")
    make_plan(code="premium", amount_cents=9900)
    make_plan(code="startup", amount_cents=4900)
    api.post("/api/v1/subscriptions", subscription_body(plan_code="premium"))
    answer = api.post("/api/v1/subscriptions", subscription_body(plan_code="startup")).json()["subscription"]
    assert (answer["plan_code"], answer["status"], answer["next_plan_code"]) == ("premium", "active", "startup")
    expected = Subscription.objects.get(status="pending").downgrade_at.date().isoformat()
    assert answer["downgrade_plan_date"] == expected
    listed = api.get("/api/v1/subscriptions").json()["subscriptions"]
    assert listed[0]["next_plan_code"] == "startup"


def test_upgrade_answers_the_new_subscription(api):
    make_customer(external_id="acme")
    make_plan(code="startup", amount_cents=4900)
    make_plan(code="premium", amount_cents=9900)
    first = api.post("/api/v1/subscriptions", subscription_body()).json()["subscription"]
    second = api.post("/api/v1/subscriptions", subscription_body(plan_code="premium")).json()["subscription"]
    assert second["lago_id"] != first["lago_id"]
    assert (second["plan_code"], second["previous_plan_code"], second["status"]) == ("premium", "startup", "active")
    assert api.get("/api/v1/subscriptions/sub_acme").json()["subscription"]["plan_code"] == "premium"


def test_subscription_list_query_count(api, django_assert_max_num_queries):
    plan = make_plan()
    for index in range(15):
        make_subscription(
            customer=make_customer(external_id=f"c{index}"),
            plan=plan,
            external_id=f"s{index}",
            subscription_at=datetime(2024, 1, 1, tzinfo=UTC),
        )
    with django_assert_max_num_queries(8):
        response = api.get("/api/v1/subscriptions?per_page=100")
    assert len(response.json()["subscriptions"]) == 15


def test_plan_list_query_count(api, django_assert_max_num_queries):
    make_tax()
    for index in range(10):
        make_plan(code=f"p{index}", tax_codes=["vat_20"], charges=[standard_charge(tax_codes=["vat_20"])])
    with django_assert_max_num_queries(10):
        response = api.get("/api/v1/plans?per_page=100")
    assert len(response.json()["plans"]) == 10
