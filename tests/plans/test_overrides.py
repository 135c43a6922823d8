"""Per-subscription overrides (Lago's plan_overrides, a child plan of the subscription), charge
codes, cascade_updates and plan metadata: worked invoice amounts through the billing run."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from hypothesis import given
from hypothesis import strategies as st

from billing_project.errors import DomainError
from invoicing.models import Invoice
from plans import charge_edits, services
from plans.charge_services import charge_code_next
from plans.errors import NotFoundError, PlansError
from plans.models import Charge, Plan
from plans.overrides import subscription_overrides_set
from tests.factories.invoicing import amounts, bill, events, subscribe, utc
from tests.factories.plans import make_plan, metric, standard_charge

pytestmark = pytest.mark.django_db

D = Decimal
JAN = [utc(2024, 1, 5)] * 100
FEB = [utc(2024, 2, 5)] * 100


def _invoice_of(subscription, summary) -> Invoice:
    return Invoice.objects.get(
        pk__in=summary.invoice_ids, invoice_subscriptions__subscription__external_id=subscription
    )


def _startup():
    # 49.00 a month in arrears, api_calls at 0.05 each.
    return make_plan(amount_cents=4900, charges=[standard_charge(amount="0.05")])


# --------------------------------------------------------------------------------------------
# Charge codes


def test_charge_codes_default_to_the_metric_code_and_are_deduplicated():
    metric("storage_gb")
    plan = make_plan(
        charges=[standard_charge(), standard_charge(amount="0.01"), standard_charge("storage_gb", code="disk")]
    )
    # Lago's Charges::GenerateCodeService: the metric's code, then <code>_2.
    assert [c.code for c in plan.charges.order_by("created_at")] == ["api_calls", "api_calls_2", "disk"]
    third = charge_edits.plan_charge_create(plan=plan, spec=standard_charge(amount="0.02"))
    assert third.code == "api_calls_3"
    with pytest.raises(PlansError) as taken:
        charge_edits.plan_charge_create(plan=plan, spec=standard_charge(code="disk"))
    assert taken.value.details == {"code": ["value_already_exist"]}
    # A removed charge frees its code.
    charge_edits.plan_charge_delete(charge=charge_edits.live_charge(plan, "disk"))
    assert charge_edits.plan_charge_create(plan=plan, spec=standard_charge(code="disk")).code == "disk"


@pytest.mark.postgres  # counts or refusals PostgreSQL makes (SQLite differs)
def test_the_database_refuses_two_live_charges_with_one_code():
    plan = make_plan(charges=[standard_charge()])
    charge = plan.charges.get()
    with pytest.raises(Exception) as caught:
        Charge.objects.create(
            plan=plan, code=charge.code, billable_metric=charge.billable_metric, charge_model="standard"
        )
    assert "charge_code_live_unique" in str(caught.value)


@pytest.mark.django_db(transaction=True)
def test_the_data_migration_gives_existing_charges_codes():
    executor = MigrationExecutor(connection)
    before = [("plans", "0006_merge_change_history_and_recorded_at")]
    after = [("plans", "0007_plan_overrides_charge_codes")]
    try:
        executor.migrate(before)
        old = executor.loader.project_state(before).apps
        Metric = old.get_model("metrics", "BillableMetric")
        api_calls = Metric.objects.create(name="API", code="api_calls", aggregation_type="count_agg")
        OldPlan = old.get_model("plans", "Plan")
        plan = OldPlan.objects.create(name="P", code="p", interval="monthly", amount=D("1"), amount_currency="USD")
        OldCharge = old.get_model("plans", "Charge")
        ids = [OldCharge.objects.create(plan=plan, billable_metric=api_calls, charge_model="standard").pk for _ in "ab"]
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        assert [Charge.objects.get(pk=pk).code for pk in ids] == ["api_calls", "api_calls_2"]
    finally:
        MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())


# --------------------------------------------------------------------------------------------
# Overrides


def test_an_override_bills_its_own_price_while_the_plan_keeps_its_own():
    plan = _startup()
    plain = subscribe(plan=plan, external_id="plain")
    special = subscribe(plan=plan, external_id="special")
    charge_id = str(plan.charges.get().pk)
    subscription_overrides_set(
        subscription=special,
        overrides={"amount_cents": 1900, "charges": [{"id": charge_id, "properties": {"amount": "0.02"}}]},
    )
    special.refresh_from_db()
    assert (special.plan.parent_id, special.plan.code) == (plan.pk, "startup")
    events(plain, JAN)
    events(special, JAN)
    summary = bill(utc(2024, 2, 1, 0, 10))
    # The plan's terms: 49.00 + 100 x 0.05 = 54.00.
    assert amounts(_invoice_of("plain", summary))["total_amount"] == D("54")
    # The override's: 19.00 + 100 x 0.02 = 21.00.
    assert amounts(_invoice_of("special", summary))["total_amount"] == D("21")
    special_fees = {f.fee_type: f.amount for f in _invoice_of("special", summary).fees.all()}
    assert special_fees == {"subscription": D("19"), "charge": D("2")}
    plan.refresh_from_db()
    assert plan.amount.amount == D("49")


def test_a_subscription_charge_update_makes_the_override_once():
    plan = _startup()
    sub = subscribe(plan=plan, external_id="s1")
    first = services.subscription_charge_update(
        subscription=sub, charge_code="api_calls", changes={"properties": {"amount": "0.03"}}
    )
    sub.refresh_from_db()
    second = services.subscription_charge_update(
        subscription=sub, charge_code="api_calls", changes={"invoice_display_name": "Calls"}
    )
    assert first.pk == second.pk and first.plan_id == sub.plan_id != plan.pk
    second.refresh_from_db()
    assert (second.properties, second.invoice_display_name, second.parent_id) == (
        {"amount": "0.03"},
        "Calls",
        plan.charges.get().pk,
    )
    assert Plan.objects.filter(parent=plan).count() == 1
    with pytest.raises(NotFoundError):
        services.subscription_charge_update(subscription=sub, charge_code="nope", changes={})
    with pytest.raises(PlansError) as bad:
        services.subscription_charge_update(
            subscription=sub, charge_code="api_calls", changes={"properties": {"amount": "-1"}}
        )
    assert bad.value.details == {"amount": ["invalid_amount"]}


def test_overrides_keep_the_plan_lookups_to_catalogue_plans():
    plan = _startup()
    sub = subscribe(plan=plan, external_id="s1")
    subscription_overrides_set(subscription=sub, overrides={"amount_cents": 100})
    assert list(Plan.live.filter(code="startup")) == [plan]
    # Deleting the plan terminates its overridden subscriptions too.
    services.plan_delete(plan=plan)
    sub.refresh_from_db()
    assert sub.status == "terminated"
    assert Plan.objects.filter(parent=plan, deleted_at__isnull=True).count() == 0


# --------------------------------------------------------------------------------------------
# cascade_updates


def test_a_plan_edit_for_new_subscriptions_only_keeps_the_old_terms_for_live_ones():
    plan = _startup()
    old = subscribe(plan=plan, external_id="old")
    charge = plan.charges.get()
    spec = {**standard_charge(amount="0.10"), "id": str(charge.pk)}
    services.plan_update(plan=plan, amount_cents=9900, charges=[spec], cascade_updates=False, now=utc(2024, 1, 15))
    new = subscribe(plan=plan, external_id="new", start=utc(2024, 2, 1))
    old.refresh_from_db()
    assert old.plan.parent_id == plan.pk  # pinned to its old terms
    events(old, JAN + FEB)
    events(new, FEB)
    january = bill(utc(2024, 2, 1, 0, 10))
    # The live subscription keeps 49.00 + 100 x 0.05 = 54.00 ...
    assert amounts(_invoice_of("old", january))["total_amount"] == D("54")
    february = bill(utc(2024, 3, 1, 0, 10))
    assert amounts(_invoice_of("old", february))["total_amount"] == D("54")
    # ... and the new one pays the new terms: 99.00 + 100 x 0.10 = 109.00.
    assert amounts(_invoice_of("new", february))["total_amount"] == D("109")


def test_a_plan_edit_without_cascade_false_reaches_live_subscriptions_not_overrides():
    plan = _startup()
    plain = subscribe(plan=plan, external_id="plain")
    special = subscribe(plan=plan, external_id="special")
    subscription_overrides_set(subscription=special, overrides={"amount_cents": 1900})
    services.plan_update(plan=plan, amount_cents=5900)
    events(plain, JAN)
    summary = bill(utc(2024, 2, 1, 0, 10))
    # Lago: the plan's own subscriptions take the change (59.00 + 5.00), overrides keep theirs.
    assert amounts(_invoice_of("plain", summary))["total_amount"] == D("64")
    assert amounts(_invoice_of("special", summary))["total_amount"] == D("19")


def test_cascade_true_reaches_overrides_that_kept_the_old_value():
    plan = _startup()
    same = subscribe(plan=plan, external_id="same")
    cheaper = subscribe(plan=plan, external_id="cheaper")
    charge_id = str(plan.charges.get().pk)
    # "same" overrides only the charge; "cheaper" only the amount.
    subscription_overrides_set(
        subscription=same, overrides={"charges": [{"id": charge_id, "properties": {"amount": "0.04"}}]}
    )
    subscription_overrides_set(subscription=cheaper, overrides={"amount_cents": 1900})
    spec = {**standard_charge(amount="0.10"), "id": charge_id}
    services.plan_update(plan=plan, amount_cents=5900, charges=[spec], cascade_updates=True)
    same.refresh_from_db()
    cheaper.refresh_from_db()
    # Lago (plans/update_service.rb, Charges::UpdateChildrenJob): an override still holding the
    # old value follows the plan; an overridden value stays.
    assert (same.plan.amount.amount, same.plan.charges.get().properties) == (D("59"), {"amount": "0.04"})
    assert (cheaper.plan.amount.amount, cheaper.plan.charges.get().properties) == (D("19"), {"amount": "0.10"})
    # A charge the plan gains reaches the overrides too.
    charge_edits.plan_charge_create(plan=plan, spec=standard_charge(amount="1"), cascade_updates=True)
    assert same.plan.charges.filter(deleted_at__isnull=True).count() == 2


def test_cascade_false_lets_a_plan_with_subscriptions_change_its_interval():
    plan = _startup()
    sub = subscribe(plan=plan, external_id="s1")
    with pytest.raises(PlansError) as frozen:
        services.plan_update(plan=plan, interval="yearly")
    assert frozen.value.details == {"interval": ["attached_to_subscriptions"]}
    services.plan_update(plan=plan, interval="yearly", cascade_updates=False)
    sub.refresh_from_db()
    assert (sub.plan.interval, Plan.objects.get(pk=plan.pk).interval) == ("monthly", "yearly")


# --------------------------------------------------------------------------------------------
# Metadata


def test_plan_metadata_replace_merge_and_delete():
    plan = _startup()
    assert services.plan_metadata_set(plan=plan, metadata={"a": "1", "b": None}, merge=False).metadata == {
        "a": "1",
        "b": None,
    }
    assert services.plan_metadata_set(plan=plan, metadata={"c": 3}, merge=True).metadata == {
        "a": "1",
        "b": None,
        "c": "3",
    }
    assert services.plan_metadata_delete(plan=plan, key="a").metadata == {"b": None, "c": "3"}
    assert services.plan_metadata_delete(plan=plan).metadata is None
    with pytest.raises(NotFoundError):
        services.plan_metadata_delete(plan=plan, key="b")
    with pytest.raises(DomainError) as too_long:
        services.plan_metadata_set(plan=plan, metadata={"k" * 101: "v"}, merge=False)
    assert too_long.value.details == {"metadata": ["value_is_invalid"]}


def test_a_coupon_limited_to_the_plan_applies_to_its_overrides():
    from plans import services as plan_services
    from tests.factories.plans import make_coupon

    plan = _startup()
    special = subscribe(plan=plan, external_id="special")
    subscription_overrides_set(subscription=special, overrides={"amount_cents": 1900})
    coupon = make_coupon(amount_cents=500, plan_codes=["startup"])
    plan_services.applied_coupon_create(customer=special.customer, coupon=coupon)
    summary = bill(utc(2024, 2, 1, 0, 10))
    # 19.00 less the plan's 5.00 coupon.
    assert amounts(_invoice_of("special", summary))["total_amount"] == D("14")


@given(st.sets(st.sampled_from(["api_calls", *(f"api_calls_{n}" for n in range(1, 8)), "api_calls_x", "other"])))
def test_the_next_charge_code_is_always_free(taken):
    code = charge_code_next(taken, "api_calls")
    assert code not in taken and code.startswith("api_calls")
    # The metric's code itself whenever it is free (Lago's GenerateCodeService).
    assert ("api_calls" in taken) or code == "api_calls"


def test_the_plan_counts_subscriptions_on_its_overrides():
    from plans import selectors

    plan = _startup()
    subscribe(plan=plan, external_id="plain")
    special = subscribe(plan=plan, external_id="special")
    subscription_overrides_set(subscription=special, overrides={"amount_cents": 1900})
    # Lago's Plan#active_subscriptions_count and #customers_count include overrides.
    counted = selectors.plans_with_charges().get(pk=plan.pk)
    assert (counted.active_subscriptions_count, counted.customers_count) == (2, 2)
