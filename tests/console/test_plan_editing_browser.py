"""Plans edited safely, in a real headless Chromium against the live server (issue 13): a
Finance Manager edits a graduated charge's tiers as rows (adds one, changes a price), is asked
whether the change applies to the plan's live subscription, keeps its terms ("only new"), and a
full-page screenshot of each page is saved under test-artifacts/console/ (gitignored)."""

from __future__ import annotations

import pytest

from tests.console.test_console_browser import _log_in, _shot, _users, browser_context  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

GRADUATED = {
    "graduated_ranges": [
        {"from_value": 0, "to_value": 100, "per_unit_amount": "0", "flat_amount": "0"},
        {"from_value": 101, "to_value": None, "per_unit_amount": "0.01", "flat_amount": "0"},
    ]
}


def test_edit_graduated_tiers_as_rows(live_server, browser_context):  # noqa: F811
    from django.contrib.admin.models import LogEntry

    from plans.models import Plan, Subscription
    from tests.factories.customers import make_customer
    from tests.factories.plans import make_plan, make_subscription, standard_charge

    _users()
    plan = make_plan(charges=[{**standard_charge(), "charge_model": "graduated", "properties": GRADUATED}])
    make_subscription(plan=plan, customer=make_customer(external_id="acme"), external_id="sub_acme")
    charge = plan.charges.get()

    page = browser_context.new_page()
    _log_in(page, live_server, "finance-manager")
    page.goto(f"{live_server.url}/admin/plans/plan/{plan.pk}/change/")
    _shot(page, "plan-01-change")
    page.click("a.charge-pricing-link")
    page.wait_for_selector("#tiers")
    assert page.locator("tr.tier-row").count() == 3
    _shot(page, "plan-02-pricing")

    # Change the open tier into 101-1000 and add a third tier from 1001 at 0.005.
    page.fill("#id_tiers-1-to_value", "1000")
    page.click("#add-tier")
    page.wait_for_selector("tr.tier-row >> nth=3")
    assert page.locator("tr.tier-row").count() == 4
    page.fill("#id_tiers-2-per_unit_amount", "0.005")
    page.fill("#id_tiers-2-flat_amount", "2")
    _shot(page, "plan-03-tiers-added")
    page.click("input[name=_save]")

    page.wait_for_selector("#cascade-question")
    assert "applies to 1 live subscription" in page.inner_text("#cascade-question")
    _shot(page, "plan-04-confirm")
    page.click("button[name=_cascade][value=new]")
    page.wait_for_selector("ul.messagelist")
    assert "the 1 live subscription(s) keep their terms" in page.inner_text("ul.messagelist")
    _shot(page, "plan-05-saved")

    charge.refresh_from_db()
    assert charge.properties["graduated_ranges"] == [
        {"from_value": 0, "to_value": 100, "per_unit_amount": "0", "flat_amount": "0"},
        {"from_value": 101, "to_value": 1000, "per_unit_amount": "0.01", "flat_amount": "0"},
        {"from_value": 1001, "to_value": None, "per_unit_amount": "0.005", "flat_amount": "2"},
    ]
    live = Subscription.objects.get(external_id="sub_acme")
    assert live.plan.parent_id == plan.pk and live.plan.charges.get().properties == GRADUATED
    assert Plan.live.get(code="startup").pk == plan.pk
    assert LogEntry.objects.filter(object_id=str(plan.pk), user__username="finance-manager").exists()

    # A gap between tiers is refused in words, nothing saved.
    page.goto(f"{live_server.url}/admin/plans/plan/{plan.pk}/charges/{charge.pk}/pricing/")
    page.fill("#id_tiers-1-from_value", "150")
    page.click("input[name=_save]")
    page.wait_for_selector("#pricing-errors")
    assert "Tiers must start at 0" in page.inner_text("#pricing-errors")
    _shot(page, "plan-06-refused")
