"""The admin calls the services: plans with inline charges (properties validated like the API),
taxes, coupons, applied coupons and subscriptions (filters, terminate action)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from plans.models import AddOn, Charge, Coupon, Plan, Subscription, Tax
from tests.factories.customers import make_customer
from tests.factories.plans import make_coupon, make_plan, make_subscription, metric, standard_charge

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

NOW = datetime(2024, 3, 10, 12, tzinfo=UTC)


def plan_form(**overrides):
    data = {
        "name": "Startup",
        "code": "startup",
        "description": "",
        "interval": "monthly",
        "amount_0": "49.00",
        "amount_1": "USD",
        "trial_period": "0",
        "bill_charges_monthly": "unknown",
        "invoice_display_name": "",
        "charges-TOTAL_FORMS": "0",
        "charges-INITIAL_FORMS": "0",
        "charges-MIN_NUM_FORMS": "0",
        "charges-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


def charge_row(index, metric_row, model="standard", properties='{"amount": "0.05"}', **extra):
    prefix = f"charges-{index}-"
    row = {
        f"{prefix}billable_metric": str(metric_row.pk),
        f"{prefix}charge_model": model,
        f"{prefix}properties": properties,
        f"{prefix}min_amount": "0",
        f"{prefix}invoiceable": "on",
        f"{prefix}invoice_display_name": "",
    }
    row.update({f"{prefix}{key}": value for key, value in extra.items()})
    return row


def existing_charge_rows(plan, charge, **fields):
    """The inline rows of `plan`'s change form with its one existing `charge`."""
    return {
        "charges-TOTAL_FORMS": "1",
        "charges-INITIAL_FORMS": "1",
        "charges-0-id": str(charge.pk),
        "charges-0-plan": str(plan.pk),
        **charge_row(0, charge.billable_metric, **fields),
    }


def test_plan_add_with_inline_charges(admin_client):
    api_calls = metric("api_calls")
    data = plan_form(**{"charges-TOTAL_FORMS": "1"}, **charge_row(0, api_calls))
    response = admin_client.post("/admin/plans/plan/add/", data)
    assert response.status_code == 302, response.context["adminform"].errors if response.context else response
    plan = Plan.live.get(code="startup")
    assert plan.amount.amount == 49
    (charge,) = plan.charges.all()
    assert (charge.charge_model, charge.properties) == ("standard", {"amount": "0.05"})


def test_plan_add_refuses_invalid_properties_like_the_api(admin_client):
    api_calls = metric("api_calls")
    data = plan_form(**{"charges-TOTAL_FORMS": "1"}, **charge_row(0, api_calls, properties='{"amount": "-3"}'))
    response = admin_client.post("/admin/plans/plan/add/", data)
    assert response.status_code == 200
    errors = [
        str(e) for formset in response.context["inline_admin_formsets"] for e in formset.formset.non_form_errors()
    ]
    assert errors == ["amount: Amounts are decimal strings, 0 or more."]
    assert not Plan.objects.exists()


def test_plan_change_refuses_interval_change_with_subscriptions(admin_client):
    plan = make_plan(charges=[standard_charge()])
    make_subscription(plan=plan, customer=make_customer(), now=NOW)
    (charge,) = plan.charges.all()
    data = plan_form(interval="yearly", **existing_charge_rows(plan, charge))
    response = admin_client.post(f"/admin/plans/plan/{plan.pk}/change/", data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["interval"] == [
        "Cannot change: the plan has live subscriptions (it would rewrite billed periods)."
    ]
    plan.refresh_from_db()
    assert plan.interval == "monthly"


def test_plan_change_updates_charge_prices(admin_client):
    plan = make_plan(charges=[standard_charge()])
    (charge,) = plan.charges.all()
    data = plan_form(name="Renamed", **existing_charge_rows(plan, charge, properties='{"amount": "0.07"}'))
    response = admin_client.post(f"/admin/plans/plan/{plan.pk}/change/", data)
    assert response.status_code == 302
    charge.refresh_from_db()
    assert charge.properties == {"amount": "0.07"}
    assert Charge.objects.filter(plan=plan).count() == 1
    plan.refresh_from_db()
    assert plan.name == "Renamed"


def test_tax_add_and_duplicate(admin_client):
    data = {"code": "vat_20", "name": "VAT", "rate": "20", "description": ""}
    assert admin_client.post("/admin/plans/tax/add/", data).status_code == 302
    response = admin_client.post("/admin/plans/tax/add/", data)
    assert response.context["adminform"].form.errors["code"] == ["A live record already uses this code."]
    assert Tax.objects.count() == 1


def test_subscription_admin_lists_filters_and_terminates(admin_client):
    plan = make_plan()
    first = make_subscription(plan=plan, customer=make_customer(external_id="a"), external_id="s1", now=NOW)
    make_subscription(plan=plan, customer=make_customer(external_id="b"), external_id="s2", now=NOW)
    page = admin_client.get("/admin/plans/subscription/?status__exact=active&billing_time__exact=calendar")
    assert page.status_code == 200
    assert page.context["cl"].result_count == 2
    response = admin_client.post(
        "/admin/plans/subscription/", {"action": "terminate", "_selected_action": [str(first.pk)]}
    )
    assert response.status_code == 302
    first.refresh_from_db()
    assert first.status == "terminated"
    assert Subscription.objects.filter(status="active").count() == 1


def test_subscription_add_through_the_service(admin_client):
    customer = make_customer(external_id="acme")
    plan = make_plan()
    response = admin_client.post(
        "/admin/plans/subscription/add/",
        {
            "customer": str(customer.pk),
            "plan": str(plan.pk),
            "external_id": "sub_acme",
            "name": "",
            "billing_time": "anniversary",
            "subscription_at_0": "",
            "subscription_at_1": "",
            "ending_at_0": "",
            "ending_at_1": "",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    subscription = Subscription.objects.get(external_id="sub_acme")
    assert (subscription.status, subscription.billing_time) == ("active", "anniversary")
    customer.refresh_from_db()
    assert customer.currency == "USD"


def test_applied_coupon_add_and_terminate(admin_client):
    customer = make_customer(external_id="acme")
    coupon = make_coupon()
    response = admin_client.post(
        "/admin/plans/appliedcoupon/add/",
        {
            "customer": str(customer.pk),
            "coupon": str(coupon.pk),
            "amount_0": "",
            "amount_1": "USD",
            "percentage_rate": "",
            "frequency": "",
            "frequency_duration": "",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    applied = customer.applied_coupons.get()
    assert applied.amount.amount == 10
    admin_client.post("/admin/plans/appliedcoupon/", {"action": "terminate", "_selected_action": [str(applied.pk)]})
    applied.refresh_from_db()
    assert applied.status == "terminated"


def test_add_on_and_coupons_add_pass_amounts_to_the_services_in_cents(admin_client):
    response = admin_client.post(
        "/admin/plans/addon/add/",
        {"name": "Setup", "code": "setup", "description": "", "amount_0": "12.50", "amount_1": "EUR"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    add_on = AddOn.live.get(code="setup")
    assert (add_on.amount.amount, str(add_on.amount.currency)) == (Decimal("12.50"), "EUR")

    coupon = {"description": "", "frequency": "once", "expiration": "no_expiration", "reusable": "on"}
    fixed = {"name": "Ten", "code": "ten", "coupon_type": "fixed_amount", "amount_0": "10", "amount_1": "USD"}
    response = admin_client.post("/admin/plans/coupon/add/", {**coupon, **fixed})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Coupon.live.get(code="ten").amount.amount == 10
    # A percentage coupon has no amount.
    percent = {"name": "Half", "code": "half", "coupon_type": "percentage", "percentage_rate": "50", "amount_0": ""}
    response = admin_client.post("/admin/plans/coupon/add/", {**coupon, **percent, "amount_1": "USD"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Coupon.live.get(code="half").percentage_rate == 50


@pytest.mark.parametrize("path", ["plan", "tax", "addon", "coupon", "appliedcoupon", "subscription", "customertax"])
def test_admin_pages_render(admin_client, path):
    make_subscription(now=NOW)
    make_coupon()
    assert admin_client.get(f"/admin/plans/{path}/").status_code == 200
    assert admin_client.get(f"/admin/plans/{path}/add/").status_code == 200
