"""Features in the console, in a real headless Chromium against the live server: a Finance Manager
adds a feature with two privileges as rows (one a select with its options), is refused a select
without options in words, then sees what a plan grants and what a subscription overrides on their
pages. A full-page screenshot of each page is saved under test-artifacts/console/ (gitignored)."""

from __future__ import annotations

import pytest

from tests.console.test_console_browser import _log_in, _shot, _users, browser_context  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def test_add_a_feature_and_see_its_grants(live_server, browser_context):  # noqa: F811
    from django.contrib.admin.models import LogEntry

    from plans.entitlements import services as entitlements
    from plans.entitlements.models import Feature
    from tests.factories.customers import make_customer
    from tests.factories.plans import make_plan, make_subscription

    _users()
    page = browser_context.new_page()
    _log_in(page, live_server, "finance-manager")
    page.goto(f"{live_server.url}/admin/plans/feature/add/")
    page.fill("#id_code", "seats")
    page.fill("#id_name", "Seats")
    page.fill("#id_privileges-0-code", "max")
    page.select_option("#id_privileges-0-value_type", "integer")
    page.click(".add-row a")
    page.fill("#id_privileges-1-code", "tier")
    page.select_option("#id_privileges-1-value_type", "select")
    _shot(page, "features-01-add")
    page.click("input[name=_save]")

    # A select needs its options: refused in words, nothing saved.
    page.wait_for_selector(".errornote, ul.errorlist")
    assert "lists its options" in page.inner_text("#content")
    assert not Feature.objects.exists()
    _shot(page, "features-02-refused")
    page.fill("#id_privileges-1-select_options", "basic, pro")
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist")
    assert "seats" in page.inner_text("#result_list")
    _shot(page, "features-03-list")

    feature = Feature.objects.get(code="seats")
    assert [(p.code, p.value_type, p.config) for p in feature.privileges.all()] == [
        ("max", "integer", {}),
        ("tier", "select", {"select_options": ["basic", "pro"]}),
    ]
    assert LogEntry.objects.filter(object_id=str(feature.pk), user__username="finance-manager").count() == 1

    plan = make_plan(code="startup")
    entitlements.plan_entitlements_update(plan=plan, entitlements={"seats": {"max": 5, "tier": "basic"}}, partial=False)
    sub = make_subscription(plan=plan, customer=make_customer(external_id="acme"), external_id="sub_acme")
    entitlements.subscription_entitlements_update(subscription=sub, entitlements={"seats": {"tier": "pro"}})

    page.goto(f"{live_server.url}/admin/plans/plan/{plan.pk}/change/")
    assert page.inner_text("table.entitlements tbody") == "seats\tmax = 5, tier = basic"
    _shot(page, "features-04-plan")
    page.goto(f"{live_server.url}/admin/plans/subscription/{sub.pk}/change/")
    rows = page.locator("table.entitlements tr.entitlement-row").all_inner_texts()
    assert rows == ["seats\tmax\t5\t5\t-", "seats\ttier\tpro\tbasic\tpro"]
    _shot(page, "features-05-subscription")
