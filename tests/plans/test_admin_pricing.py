"""The console's plan editing (issue 13, "Plans edited safely"): a charge's pricing as fields by
name with tiers as rows (added without JavaScript), validated by the API's service with errors in
words; a change live subscriptions would feel asks first (applies to N / only new ones); the
duplicate action; each writes an audit row (LogEntry) on the plan."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry

from plans.models import Plan
from tests.factories.customers import make_customer
from tests.factories.plans import make_plan, make_subscription, standard_charge
from tests.plans.test_admin import existing_charge_rows, plan_form

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

NOW = datetime(2024, 3, 10, 12, tzinfo=UTC)
GRADUATED = {
    "graduated_ranges": [
        {"from_value": 0, "to_value": 100, "per_unit_amount": "0", "flat_amount": "0"},
        {"from_value": 101, "to_value": None, "per_unit_amount": "0.01", "flat_amount": "0"},
    ]
}


def _url(plan, charge) -> str:
    return f"/admin/plans/plan/{plan.pk}/charges/{charge.pk}/pricing/"


def tiers(*rows, model="graduated", **fields):
    data = {
        "charge_model": model,
        "min_amount": "0",
        "tiers-TOTAL_FORMS": str(len(rows)),
        "tiers-INITIAL_FORMS": "0",
        "tiers-MIN_NUM_FORMS": "0",
        "tiers-MAX_NUM_FORMS": "1000",
        **fields,
    }
    for index, row in enumerate(rows):
        for key, value in row.items():
            data[f"tiers-{index}-{key}"] = value
    return data


def _graduated_plan():
    return make_plan(charges=[{**standard_charge(), "charge_model": "graduated", "properties": GRADUATED}])


def test_the_pricing_page_shows_tiers_as_rows(admin_client):
    plan = _graduated_plan()
    charge = plan.charges.get()
    page = admin_client.get(_url(plan, charge))
    assert page.status_code == 200
    body = page.content.decode()
    assert body.count('class="tier-row"') == 3  # two tiers and a blank row to fill
    assert 'value="101"' in body and 'value="0.01"' in body
    assert "Edit prices and tiers" in admin_client.get(f"/admin/plans/plan/{plan.pk}/change/").content.decode()


def test_add_a_tier_without_javascript_then_save(admin_client):
    plan = _graduated_plan()
    charge = plan.charges.get()
    rows = [
        {"from_value": "0", "to_value": "100", "per_unit_amount": "0", "flat_amount": "0"},
        {"from_value": "101", "to_value": "1000", "per_unit_amount": "0.01", "flat_amount": ""},
    ]
    more = admin_client.post(_url(plan, charge), {**tiers(*rows), "_add_tier": "Add a tier"})
    assert more.content.decode().count('class="tier-row"') == 4  # the two, a new one and the blank one
    charge.refresh_from_db()
    assert charge.properties == GRADUATED  # nothing saved yet
    # The third tier's first unit is left blank: it follows the previous tier (1001).
    third = {"from_value": "", "to_value": "", "per_unit_amount": "0.005", "flat_amount": "2"}
    saved = admin_client.post(_url(plan, charge), {**tiers(*rows, third), "_save": "Save pricing"})
    assert saved.status_code == 302
    charge.refresh_from_db()
    assert charge.properties == {
        "graduated_ranges": [
            {"from_value": 0, "to_value": 100, "per_unit_amount": "0", "flat_amount": "0"},
            {"from_value": 101, "to_value": 1000, "per_unit_amount": "0.01", "flat_amount": "0"},
            {"from_value": 1001, "to_value": None, "per_unit_amount": "0.005", "flat_amount": "2"},
        ]
    }
    entry = LogEntry.objects.get(object_id=str(plan.pk))
    assert entry.change_message == "Pricing of charge api_calls changed (applies to 0 live subscription(s))."


def test_a_removed_tier_and_a_gap_are_refused_in_words(admin_client):
    plan = _graduated_plan()
    charge = plan.charges.get()
    rows = [
        {"from_value": "0", "to_value": "100", "per_unit_amount": "0", "flat_amount": "0", "DELETE": "on"},
        {"from_value": "101", "to_value": "", "per_unit_amount": "0.01", "flat_amount": "0"},
    ]
    refused = admin_client.post(_url(plan, charge), {**tiers(*rows), "_save": "Save pricing"})
    assert refused.status_code == 200
    assert refused.context["errors"] == [
        "Graduated ranges: Tiers must start at 0, each tier must start one above the previous tier's last unit, "
        "and only the last tier may be left without a last unit."
    ]
    charge.refresh_from_db()
    assert charge.properties == GRADUATED


def test_percentage_fields_by_name(admin_client):
    plan = make_plan(charges=[standard_charge()])
    charge = plan.charges.get()
    page = admin_client.post(_url(plan, charge), {**tiers(model="percentage"), "_refresh": "Show"})
    assert 'name="rate"' in page.content.decode() and 'name="per_transaction_max_amount"' in page.content.decode()
    data = tiers(model="percentage", rate="1.5", fixed_amount="0.1", per_transaction_min_amount="2")
    bad = admin_client.post(_url(plan, charge), {**data, "per_transaction_max_amount": "1", "_save": "Save"})
    assert bad.context["errors"] == ["Per transaction max amount: The maximum per transaction is below the minimum."]
    admin_client.post(_url(plan, charge), {**data, "_save": "Save"})
    charge.refresh_from_db()
    assert (charge.charge_model, charge.properties) == (
        "percentage",
        {"rate": "1.5", "fixed_amount": "0.1", "per_transaction_min_amount": "2"},
    )


def test_pricing_of_a_plan_with_live_subscriptions_asks_first(admin_client):
    plan = _graduated_plan()
    sub = make_subscription(plan=plan, customer=make_customer(), now=NOW)
    charge = plan.charges.get()
    rows = [
        {"from_value": "0", "to_value": "100", "per_unit_amount": "0", "flat_amount": "0"},
        {"from_value": "101", "to_value": "", "per_unit_amount": "0.02", "flat_amount": "0"},
    ]
    asked = admin_client.post(_url(plan, charge), {**tiers(*rows), "_save": "Save pricing"})
    assert asked.status_code == 200
    assert "applies to 1 live subscription</strong>" in asked.content.decode()
    charge.refresh_from_db()
    assert charge.properties == GRADUATED  # asked, not saved
    # "Only new subscriptions": the live one keeps the old tiers through its own override.
    answer = dict(asked.context["hidden"])
    answer["_cascade"] = "new"
    assert admin_client.post(_url(plan, charge), answer).status_code == 302
    charge.refresh_from_db()
    sub.refresh_from_db()
    assert charge.properties["graduated_ranges"][1]["per_unit_amount"] == "0.02"
    assert sub.plan.parent_id == plan.pk
    assert sub.plan.charges.get().properties == GRADUATED
    assert "only new subscriptions; the 1 live subscription(s) keep their terms" in (
        LogEntry.objects.get(object_id=str(plan.pk)).change_message
    )


def test_plan_save_with_live_subscriptions_asks_then_applies_to_them(admin_client):
    plan = make_plan(charges=[standard_charge()])
    sub = make_subscription(plan=plan, customer=make_customer(), now=NOW)
    charge = plan.charges.get()
    data = plan_form(amount_0="59.00", **existing_charge_rows(plan, charge))
    asked = admin_client.post(f"/admin/plans/plan/{plan.pk}/change/", data)
    assert asked.status_code == 200 and "applies to 1 live subscription" in asked.content.decode()
    plan.refresh_from_db()
    assert plan.amount.amount == Decimal("49")
    # A rename only does not ask.
    renamed = admin_client.post(
        f"/admin/plans/plan/{plan.pk}/change/", plan_form(name="Start", **existing_charge_rows(plan, charge))
    )
    assert renamed.status_code == 302
    applied = admin_client.post(f"/admin/plans/plan/{plan.pk}/change/", {**data, "_cascade": "all"})
    assert applied.status_code == 302
    plan.refresh_from_db()
    sub.refresh_from_db()
    assert (plan.amount.amount, sub.plan_id) == (Decimal("59"), plan.pk)
    assert (
        "applies to live subscriptions" in LogEntry.objects.filter(object_id=str(plan.pk)).first().get_change_message()
    )


def test_plan_save_for_new_subscriptions_only(admin_client):
    plan = make_plan(charges=[standard_charge()])
    sub = make_subscription(plan=plan, customer=make_customer(), now=NOW)
    charge = plan.charges.get()
    data = plan_form(amount_0="59.00", **existing_charge_rows(plan, charge, properties='{"amount": "0.09"}'))
    assert admin_client.post(f"/admin/plans/plan/{plan.pk}/change/", {**data, "_cascade": "new"}).status_code == 302
    plan.refresh_from_db()
    sub.refresh_from_db()
    assert (plan.amount.amount, plan.charges.get(deleted_at__isnull=True).properties) == (
        Decimal("59"),
        {"amount": "0.09"},
    )
    assert (sub.plan.amount.amount, sub.plan.charges.get().properties) == (Decimal("49"), {"amount": "0.05"})


def test_duplicate_plan_action(admin_client):
    plan = _graduated_plan()
    response = admin_client.post(
        "/admin/plans/plan/", {"action": "duplicate", "_selected_action": [str(plan.pk)]}, follow=True
    )
    assert "Startup duplicated as startup_copy." in response.content.decode()  # the admin capitalizes
    copy = Plan.live.get(code="startup_copy")
    assert (copy.name, copy.amount.amount, copy.parent_id) == ("Startup (copy)", Decimal("49"), None)
    assert copy.charges.get().properties == GRADUATED
    assert LogEntry.objects.get(object_id=str(copy.pk)).change_message == "Duplicated from startup."
    admin_client.post("/admin/plans/plan/", {"action": "duplicate", "_selected_action": [str(plan.pk)]})
    assert Plan.live.filter(code="startup_copy_2").exists()


def test_a_viewer_cannot_post_pricing(client, django_user_model):
    from django.contrib.auth.models import Permission

    plan = _graduated_plan()
    charge = plan.charges.get()
    viewer = django_user_model.objects.create_user("viewer", password="pw-123456-x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_plan"))
    client.force_login(viewer)
    assert client.post(_url(plan, charge), tiers(model="standard", amount="9", _save="Save")).status_code == 403
    charge.refresh_from_db()
    assert charge.properties == GRADUATED
