"""The demo step, the receivers of metrics' signals, and the fee tax selector."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from metrics import selectors as metrics_selectors
from metrics import services as metrics_services
from plans import demo, selectors
from plans.models import AddOn, Charge, ChargeFilter, Plan, Subscription, Tax
from tests.factories.customers import make_customer
from tests.factories.metrics import make_event, make_metric
from tests.factories.plans import make_plan, make_subscription, make_tax, standard_charge

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def test_demo_is_idempotent_and_works_alone():
    out = io.StringIO()
    demo.load(stdout=out)
    assert "plan startup" in out.getvalue()
    demo.load(stdout=out)
    assert out.getvalue().endswith("plans: everything already present")
    assert Tax.objects.get(code="vat_20").applied_to_organization
    startup = Plan.live.get(code="startup")
    assert (startup.amount.amount, str(startup.amount.currency), startup.pay_in_advance) == (49, "USD", False)
    api_calls, storage = startup.charges.order_by("created_at")
    assert [t["per_unit_amount"] for t in api_calls.properties["graduated_ranges"]] == ["0", "0.002", "0.001"]
    assert storage.properties == {"amount": "0.25"}
    assert str(Plan.live.get(code="startup_jpy").amount.currency) == "JPY"
    acme = Subscription.objects.get(external_id="sub_acme")
    tanaka = Subscription.objects.get(external_id="sub_tanaka")
    assert (acme.status, acme.billing_time, acme.customer.currency) == ("active", "calendar", "USD")
    assert (tanaka.plan.code, tanaka.customer.currency) == ("startup_jpy", "JPY")
    # The 1st of the month two months ago, at local midnight.
    local = acme.started_at.astimezone(UTC)
    now = timezone.now()
    assert local.day == 1 and (now.year * 12 + now.month) - (local.year * 12 + local.month) == 2
    assert tanaka.started_at.astimezone(ZoneInfo(tanaka.customer.timezone or "UTC")).hour == 0
    # globex: weekly, anniversary, from local midnight eight days ago, with the welcome coupon.
    globex = Subscription.objects.get(external_id="sub_globex")
    paris = globex.started_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (globex.plan.interval, globex.billing_time, globex.plan.amount.amount) == ("weekly", "anniversary", 12)
    assert paris.hour == 0 and (now.astimezone(ZoneInfo("Europe/Paris")).date() - paris.date()).days == 8
    assert globex.customer.applied_coupons.get().coupon.code == "welcome_eur"
    assert AddOn.live.get(code="onboarding").amount.amount == 500
    assert Subscription.objects.count() == 3


def test_first_of_month_two_months_ago():
    assert demo.first_of_month_two_months_ago(datetime(2024, 2, 15, tzinfo=UTC), "UTC") == datetime(
        2023, 12, 1, tzinfo=UTC
    )
    tokyo = demo.first_of_month_two_months_ago(datetime(2024, 3, 31, 20, tzinfo=UTC), "Asia/Tokyo")
    assert tokyo.astimezone(UTC) == datetime(2024, 1, 31, 15, tzinfo=UTC)  # Feb 1 in Tokyo


def test_deleting_a_metric_retires_its_charges(django_capture_on_commit_callbacks):
    metric = make_metric(code="api_calls", filters={"region": ["eu"]})
    plan = make_plan(
        charges=[{**standard_charge(), "filters": [{"values": {"region": ["eu"]}, "properties": {"amount": "1"}}]}]
    )
    with django_capture_on_commit_callbacks(execute=True):
        metrics_services.billable_metric_delete(metric=metric)
    charge = Charge.objects.get(plan=plan)
    assert charge.deleted_at is not None
    assert ChargeFilter.objects.get(charge=charge).deleted_at is not None


def test_events_of_known_subscriptions_are_matched():
    make_metric(code="api_calls")
    make_subscription(external_id="sub_1")
    at = datetime(2024, 1, 1, tzinfo=UTC)
    make_event(timestamp=at, external_subscription_id="sub_1")
    stray = make_event(timestamp=at, external_subscription_id="sub_unknown")
    assert [event.pk for event in metrics_selectors.unmatched_events()] == [stray.pk]


def test_fee_taxes_most_specific_first():
    customer = make_customer()
    org_tax = make_tax(code="org", applied_to_organization=True)
    plan_tax, charge_tax, customer_tax = make_tax(code="plan"), make_tax(code="charge"), make_tax(code="cust")
    plan = make_plan(tax_codes=["plan"], charges=[standard_charge(tax_codes=["charge"]), standard_charge("seats")])
    with_taxes, without = plan.charges.order_by("created_at")
    assert selectors.fee_taxes(customer=customer, plan=plan, charge=with_taxes) == [charge_tax]
    assert selectors.fee_taxes(customer=customer, plan=plan, charge=without) == [plan_tax]
    bare = make_plan(code="bare")
    assert selectors.fee_taxes(customer=customer, plan=bare) == [org_tax]
    from plans import services

    services.customer_taxes_set(customer=customer, tax_codes=["cust"])
    assert selectors.fee_taxes(customer=customer, plan=bare) == [customer_tax]
    add_on = services.add_on_create(name="A", code="a", amount_cents=1, amount_currency="USD")
    assert selectors.fee_taxes(customer=customer, add_on=add_on) == [customer_tax]


def test_customer_saved_with_tax_codes_sets_the_customers_taxes():
    from customers.signals import customer_saved

    customer = make_customer()
    make_tax(code="vat_20")
    customer_saved.send(sender=None, customer_id=customer.pk, tax_codes=["vat_20", "unknown"])
    assert [row.tax.code for row in customer.applied_taxes.all()] == ["vat_20"]
    customer_saved.send(sender=None, customer_id=customer.pk)  # without tax_codes: unchanged
    assert customer.applied_taxes.count() == 1
    customer_saved.send(sender=None, customer_id=customer.pk, tax_codes=[])
    assert customer.applied_taxes.count() == 0


def test_deleting_a_customer_ends_its_subscriptions(api, django_capture_on_commit_callbacks):
    from datetime import timedelta

    customer = make_customer(external_id="leaving")
    active = make_subscription(customer=customer, external_id="sub_active")
    pending = make_subscription(
        customer=customer, external_id="sub_later", subscription_at=timezone.now() + timedelta(days=10)
    )
    other = make_subscription(external_id="sub_other")
    assert (active.status, pending.status, other.status) == ("active", "pending", "active")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete("/api/v1/customers/leaving")

    assert response.status_code == 200
    statuses = dict(Subscription.objects.values_list("external_id", "status"))
    assert statuses == {"sub_active": "terminated", "sub_later": "canceled", "sub_other": "active"}
