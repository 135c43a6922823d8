"""Plans, charges and the catalog through the services: Lago's rules, with their error codes,
and what may change once a plan has subscriptions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from plans import services
from plans.errors import NotFoundError, PlansError
from plans.models import Charge, ChargeFilter, Plan
from tests.factories.customers import make_customer
from tests.factories.metrics import make_metric
from tests.factories.plans import make_plan, make_subscription, make_tax, metric, standard_charge

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

NOW = datetime(2024, 3, 10, 12, tzinfo=UTC)


def errors_of(call, *args, **kwargs):
    with pytest.raises(PlansError) as caught:
        call(*args, **kwargs)
    return caught.value.code, caught.value.details


def test_plan_with_charges_and_taxes():
    make_tax(code="vat_20")
    graduated = {
        "graduated_ranges": [
            {"from_value": 0, "to_value": 1000, "per_unit_amount": "0", "flat_amount": "0"},
            {"from_value": 1001, "to_value": None, "per_unit_amount": "0.002", "flat_amount": "0"},
        ]
    }
    plan = make_plan(
        tax_codes=["vat_20"],
        charges=[
            {
                "billable_metric_id": str(metric("api_calls").pk),
                "charge_model": "graduated",
                "properties": {**graduated, "junk": 1},
                "min_amount_cents": 500,
            },
            standard_charge("storage_gb", "0.25", tax_codes=["vat_20"]),
        ],
    )
    assert plan.amount.amount == Decimal("49.00")
    assert str(plan.amount.currency) == "USD"
    assert [t.code for t in plan.taxes.all()] == ["vat_20"]
    api_calls, storage = plan.charges.order_by("created_at")
    assert api_calls.properties == graduated  # unknown keys dropped
    assert api_calls.min_amount == Decimal("5.00")
    assert [t.code for t in storage.taxes.all()] == ["vat_20"]


def test_jpy_plan_amounts_have_no_minor_unit():
    plan = make_plan(code="startup_jpy", amount_cents=5000, amount_currency="JPY")
    assert plan.amount.amount == Decimal(5000)


@pytest.mark.parametrize(
    ("overrides", "details"),
    [
        ({"name": ""}, {"name": ["value_is_mandatory"]}),
        ({"interval": "daily"}, {"interval": ["value_is_invalid"]}),
        ({"amount_currency": "XXY"}, {"amount_currency": ["value_is_invalid"]}),
        ({"amount_cents": -1}, {"amount_cents": ["value_is_invalid"]}),
        ({"trial_period": Decimal("-1")}, {"trial_period": ["value_is_invalid"]}),
        ({"bill_charges_monthly": True}, {"bill_charges_monthly": ["value_is_invalid"]}),
    ],
)
def test_plan_field_rules(overrides, details):
    assert errors_of(make_plan, **overrides) == ("validation_errors", details)
    assert not Plan.objects.exists()


def test_bill_charges_monthly_is_for_yearly_and_semiannual_only():
    yearly = make_plan(code="y", interval="yearly", bill_charges_monthly=True)
    assert yearly.bill_charges_monthly is True
    monthly = make_plan(code="m", interval="monthly", bill_charges_monthly=False)
    assert monthly.bill_charges_monthly is None


def test_plan_code_is_unique_among_live_plans():
    plan = make_plan()
    assert errors_of(make_plan) == ("validation_errors", {"code": ["value_already_exist"]})
    services.plan_delete(plan=plan)
    assert make_plan().pk != plan.pk


def test_unknown_tax_code_or_metric_is_404_and_writes_nothing():
    with pytest.raises(NotFoundError) as caught:
        make_plan(tax_codes=["nope"])
    assert caught.value.code == "tax_not_found"
    with pytest.raises(NotFoundError) as caught:
        make_plan(charges=[{"billable_metric_code": "nope", "charge_model": "standard"}])
    assert caught.value.code == "billable_metric_not_found"
    assert not Plan.objects.exists()


def test_invalid_charge_properties_are_refused_with_lagos_codes():
    bad = standard_charge(amount="-1")
    assert errors_of(make_plan, charges=[bad]) == ("validation_errors", {"amount": ["invalid_amount"]})
    gap = {
        "billable_metric_id": str(metric().pk),
        "charge_model": "volume",
        "properties": {
            "volume_ranges": [
                {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"},
                {"from_value": 12, "to_value": None, "per_unit_amount": "1", "flat_amount": "0"},
            ]
        },
    }
    assert errors_of(make_plan, charges=[gap])[1] == {"volume_ranges": ["invalid_volume_ranges"]}
    assert not Charge.objects.exists()


def test_charge_without_properties_gets_lagos_free_defaults():
    plan = make_plan(charges=[{"billable_metric_id": str(metric().pk), "charge_model": "graduated"}])
    (charge,) = plan.charges.all()
    assert charge.properties["graduated_ranges"][0] == {
        "from_value": 0,
        "to_value": None,
        "per_unit_amount": "0",
        "flat_amount": "0",
    }


@pytest.mark.parametrize(
    ("aggregation", "model", "extra", "details"),
    [
        (
            "max_agg",
            "standard",
            {"pay_in_advance": True},
            {"pay_in_advance": ["invalid_aggregation_type_or_charge_model"]},
        ),
        (
            "sum_agg",
            "volume",
            {"pay_in_advance": True},
            {"pay_in_advance": ["invalid_aggregation_type_or_charge_model"]},
        ),
        (
            "sum_agg",
            "standard",
            {"pay_in_advance": True, "min_amount_cents": 100},
            {"min_amount_cents": ["not_compatible_with_pay_in_advance"]},
        ),
        ("sum_agg", "standard", {"prorated": True}, {"prorated": ["invalid_billable_metric_or_charge_model"]}),
        ("count_agg", "dynamic", {}, {"charge_model": ["invalid_aggregation_type_or_charge_model"]}),
        ("latest_agg", "percentage", {}, {"billable_metric": ["invalid_value"]}),
    ],
)
def test_charge_rules_that_need_the_metric(aggregation, model, extra, details):
    metric_row = make_metric(code="m", aggregation_type=aggregation, field_name="value")
    from plans import charge_models

    charge = {
        "billable_metric_id": str(metric_row.pk),
        "charge_model": model,
        "properties": charge_models.default_properties(model),
        **extra,
    }
    assert errors_of(make_plan, charges=[charge]) == ("validation_errors", details)


def test_allowed_pay_in_advance_and_prorated_charges():
    seats = make_metric(code="seats", aggregation_type="unique_count_agg", field_name="user", recurring=True)
    total = make_metric(code="volume_sum", aggregation_type="sum_agg", field_name="amount")
    plan = make_plan(
        charges=[
            {
                "billable_metric_id": str(seats.pk),
                "charge_model": "standard",
                "properties": {"amount": "5"},
                "pay_in_advance": True,
                "prorated": True,
                "invoiceable": False,
            },
            {"billable_metric_id": str(seats.pk), "charge_model": "volume", "prorated": True},
            {"billable_metric_id": str(total.pk), "charge_model": "dynamic"},
        ]
    )
    advance, volume, dynamic = plan.charges.order_by("created_at")
    assert (advance.pay_in_advance, advance.prorated, advance.invoiceable) == (True, True, False)
    assert volume.prorated and volume.invoiceable
    assert dynamic.properties == {}


def test_invoiceable_false_only_means_something_in_advance():
    plan = make_plan(charges=[standard_charge(invoiceable=False)])
    assert plan.charges.get().invoiceable is True


def test_charge_filters_must_use_the_metrics_filter_values():
    make_metric(code="api_calls", filters={"region": ["eu", "us"], "tier": ["gold"]})
    base = standard_charge()
    good = {
        **base,
        "filters": [
            {"values": {"region": ["eu"]}, "properties": {"amount": "0.10"}, "invoice_display_name": "EU calls"},
            {"values": {"region": ["us"], "tier": ["__ALL_FILTER_VALUES__"]}, "properties": {}},
        ],
    }
    plan = make_plan(charges=[good])
    filters = list(ChargeFilter.objects.filter(charge__plan=plan).order_by("created_at"))
    assert [f.values for f in filters] == [{"region": ["eu"]}, {"region": ["us"], "tier": ["__ALL_FILTER_VALUES__"]}]
    assert filters[0].properties == {"amount": "0.10"}
    for bad_values in ({"region": ["asia"]}, {"colour": ["red"]}, {}, {"region": []}):
        bad = {**base, "filters": [{"values": bad_values, "properties": {}}]}
        assert errors_of(make_plan, code="other", charges=[bad])[1] == {"filters": ["invalid_filter_values"]}
    wrong_price = {**base, "filters": [{"values": {"region": ["eu"]}, "properties": {"amount": "x"}}]}
    assert errors_of(make_plan, code="other", charges=[wrong_price])[1] == {"amount": ["invalid_amount"]}


# ---------------------------------------------------------------------------------------------
# Updates


def test_update_replaces_charges_soft_deleting_the_missing_ones():
    plan = make_plan(charges=[standard_charge("api_calls"), standard_charge("storage_gb", "0.25")])
    api_calls, storage = plan.charges.order_by("created_at")
    updated = services.plan_update(
        plan=plan,
        name="Startup 2",
        charges=[{"id": str(api_calls.pk), **standard_charge("api_calls", "0.07")}, standard_charge("seats", "3")],
    )
    assert updated.name == "Startup 2"
    live = list(Charge.live.filter(plan=plan).order_by("created_at"))
    assert [c.billable_metric.code for c in live] == ["api_calls", "seats"]
    assert live[0].pk == api_calls.pk and live[0].properties == {"amount": "0.07"}
    storage.refresh_from_db()
    assert storage.deleted_at is not None  # kept for fees already billed


def test_update_without_charges_key_keeps_charges():
    plan = make_plan(charges=[standard_charge()])
    services.plan_update(plan=plan, description="new")
    assert plan.charges.filter(deleted_at__isnull=True).count() == 1


def test_plan_with_live_subscriptions_changes_prospectively_only():
    plan = make_plan(charges=[standard_charge()])
    make_subscription(plan=plan, customer=make_customer(), now=NOW)
    (charge,) = plan.charges.all()
    # Price changes apply from the next invoice: allowed.
    updated = services.plan_update(
        plan=plan,
        amount_cents=5900,
        name="Startup+",
        charges=[{"id": str(charge.pk), **standard_charge(amount="0.06")}],
    )
    assert updated.amount.amount == Decimal("59.00")
    charge.refresh_from_db()
    assert charge.properties == {"amount": "0.06"}
    # What decides the periods or how they were billed: refused.
    for change, field in [
        ({"interval": "yearly"}, "interval"),
        ({"amount_currency": "EUR"}, "amount_currency"),
        ({"pay_in_advance": True}, "pay_in_advance"),
        ({"trial_period": Decimal(7)}, "trial_period"),
    ]:
        assert errors_of(services.plan_update, plan=plan, **change) == (
            "validation_errors",
            {field: ["attached_to_subscriptions"]},
        )
    model_change = {
        "id": str(charge.pk),
        **standard_charge(),
        "charge_model": "package",
        "properties": {"amount": "1", "package_size": 10},
    }
    assert errors_of(services.plan_update, plan=plan, charges=[model_change])[1] == {
        "charge_model": ["attached_to_subscriptions"]
    }
    # Sending the same values back is not a change.
    services.plan_update(plan=plan, interval="monthly", amount_currency="USD", pay_in_advance=False)


def test_plan_without_live_subscriptions_may_change_anything():
    plan = make_plan()
    subscription = make_subscription(plan=plan, customer=make_customer(), now=NOW)
    services.subscription_terminate(subscription=subscription, now=NOW)
    updated = services.plan_update(plan=plan, interval="yearly", amount_currency="EUR", bill_charges_monthly=True)
    assert (updated.interval, str(updated.amount.currency), updated.bill_charges_monthly) == ("yearly", "EUR", True)


def test_plan_delete_terminates_its_subscriptions():
    plan = make_plan()
    active = make_subscription(plan=plan, customer=make_customer(external_id="a"), external_id="s1", now=NOW)
    pending = make_subscription(
        plan=plan,
        customer=make_customer(external_id="b"),
        external_id="s2",
        subscription_at=datetime(2024, 4, 1, tzinfo=UTC),
        now=NOW,
    )
    services.plan_delete(plan=plan, now=NOW)
    active.refresh_from_db()
    pending.refresh_from_db()
    assert (active.status, active.terminated_at) == ("terminated", NOW)
    assert (pending.status, pending.canceled_at) == ("canceled", NOW)
    plan.refresh_from_db()
    assert plan.deleted_at == NOW


# ---------------------------------------------------------------------------------------------
# Taxes and add-ons


def test_tax_rules():
    make_tax(code="vat_20", rate="20")
    assert errors_of(make_tax, code="vat_20")[1] == {"code": ["value_already_exist"]}
    assert errors_of(make_tax, code="x", rate="-1")[1] == {"rate": ["value_is_invalid"]}
    assert errors_of(services.tax_create, code="", name="", rate=Decimal(1))[1] == {
        "code": ["value_is_mandatory"],
        "name": ["value_is_mandatory"],
    }


def test_add_on_create_update_delete():
    make_tax()
    add_on = services.add_on_create(
        name="Setup", code="setup", amount_cents=19999, amount_currency="EUR", tax_codes=["vat_20"]
    )
    assert add_on.amount.amount == Decimal("199.99")
    add_on = services.add_on_update(add_on=add_on, amount_cents=100, amount_currency="JPY")
    assert (add_on.amount.amount, str(add_on.amount.currency)) == (Decimal(100), "JPY")
    services.add_on_delete(add_on=add_on)
    again = services.add_on_create(name="Setup", code="setup", amount_cents=1, amount_currency="EUR")
    assert again.pk != add_on.pk


def test_customer_taxes_set_replaces_them():
    customer = make_customer()
    make_tax(code="a")
    make_tax(code="b")
    services.customer_taxes_set(customer=customer, tax_codes=["a", "b"])
    services.customer_taxes_set(customer=customer, tax_codes=["b"])
    assert [row.tax.code for row in customer.applied_taxes.all()] == ["b"]
