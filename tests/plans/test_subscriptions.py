"""Subscription lifecycle: start (now, backdated, pending), currency rule, plan changes
(upgrade now, downgrade at the period end), termination, the hourly task and the signals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from plans import periods, services
from plans.errors import PlansError
from plans.models import Plan, Subscription
from plans.signals import subscription_started, subscription_terminated
from plans.tasks import activate_due_subscriptions
from tests.factories.customers import make_customer
from tests.factories.plans import make_plan, make_subscription

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

NOW = datetime(2024, 3, 10, 12, tzinfo=UTC)


@pytest.fixture
def signals(django_capture_on_commit_callbacks):
    """Signals sent (after commit) while the test runs, as (name, kwargs)."""
    sent: list[tuple[str, dict]] = []

    def started(sender, **kwargs):
        sent.append(("started", {k: v for k, v in kwargs.items() if k != "signal"}))

    def terminated(sender, **kwargs):
        sent.append(("terminated", {k: v for k, v in kwargs.items() if k != "signal"}))

    subscription_started.connect(started, dispatch_uid="test-started")
    subscription_terminated.connect(terminated, dispatch_uid="test-terminated")
    yield sent
    subscription_started.disconnect(dispatch_uid="test-started")
    subscription_terminated.disconnect(dispatch_uid="test-terminated")


def test_subscription_starting_now_is_active_and_sets_the_customer_currency(
    django_capture_on_commit_callbacks, signals
):
    customer = make_customer()
    assert customer.currency == ""
    with django_capture_on_commit_callbacks(execute=True):
        subscription = make_subscription(customer=customer, now=NOW)
    assert (subscription.status, subscription.started_at, subscription.subscription_at) == ("active", NOW, NOW)
    customer.refresh_from_db()
    assert customer.currency == "USD"
    assert signals == [("started", {"subscription_id": subscription.pk})]


def test_signals_wait_for_the_commit(signals):
    # Without running on-commit callbacks (the test transaction never commits), nothing is sent.
    make_subscription(now=NOW)
    assert signals == []


def test_backdated_subscription_starts_at_its_date():
    past = datetime(2024, 1, 15, tzinfo=UTC)
    subscription = make_subscription(subscription_at=past, now=NOW)
    assert (subscription.status, subscription.started_at) == ("active", past)


def test_future_subscription_is_pending_until_the_task_activates_it(django_capture_on_commit_callbacks, signals):
    start = NOW + timedelta(days=3)
    subscription = make_subscription(subscription_at=start, now=NOW)
    assert (subscription.status, subscription.started_at) == ("pending", None)
    assert services.subscriptions_activate_due(now=start - timedelta(seconds=1)) == {
        "activated": 0,
        "ended": 0,
        "downgraded": 0,
    }
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.subscriptions_activate_due(now=start + timedelta(minutes=5))
    assert counts["activated"] == 1
    subscription.refresh_from_db()
    # Started when it was due, not when the task happened to run.
    assert (subscription.status, subscription.started_at) == ("active", start)
    assert signals == [("started", {"subscription_id": subscription.pk})]
    assert services.subscriptions_activate_due(now=start + timedelta(hours=1))["activated"] == 0


def test_another_currency_is_refused():
    customer = make_customer()
    make_subscription(customer=customer, now=NOW)
    jpy = make_plan(code="startup_jpy", amount_cents=5000, amount_currency="JPY")
    with pytest.raises(PlansError) as caught:
        make_subscription(customer=customer, plan=jpy, external_id="sub_2", now=NOW)
    assert caught.value.code == "currencies_does_not_match"
    assert Subscription.objects.filter(external_id="sub_2").count() == 0


def test_external_id_of_another_customers_live_subscription_is_refused():
    make_subscription(customer=make_customer(external_id="a"), now=NOW)
    with pytest.raises(PlansError) as caught:
        make_subscription(customer=make_customer(external_id="b"), now=NOW)
    assert caught.value.details == {"external_id": ["value_already_exist"]}


def test_same_external_id_and_plan_is_the_same_subscription():
    first = make_subscription(now=NOW)
    assert make_subscription(now=NOW + timedelta(days=1)).pk == first.pk
    assert Subscription.objects.count() == 1


def test_ending_at_must_be_in_the_future():
    with pytest.raises(PlansError) as caught:
        make_subscription(ending_at=NOW - timedelta(days=1), now=NOW)
    assert caught.value.details == {"ending_at": ["invalid_date"]}


def test_plan_overrides_give_the_subscription_a_child_plan():
    subscription = make_subscription(plan_overrides={"amount_cents": 1, "trial_period": 3}, now=NOW)
    plan = Plan.live.get(code="startup")
    assert (subscription.plan.parent_id, subscription.plan.code) == (plan.pk, "startup")
    assert (subscription.plan.amount.amount, subscription.plan.trial_period) == (Decimal("0.01"), 3)
    assert (plan.amount.amount, plan.trial_period) == (Decimal("49"), 0)
    # The same external id and plan again: the same subscription, its override changed.
    again = make_subscription(plan_overrides={"amount_cents": 2}, now=NOW)
    assert (again.pk, again.plan_id, again.plan.amount.amount) == (
        subscription.pk,
        subscription.plan_id,
        Decimal("0.02"),
    )


# ---------------------------------------------------------------------------------------------
# Plan changes


@pytest.mark.parametrize(
    ("old", "new", "upgrade"),
    [
        (("monthly", 4900), ("monthly", 9900), True),
        (("monthly", 4900), ("monthly", 4900), True),  # same yearly price counts as an upgrade
        (("monthly", 4900), ("yearly", 58800), True),  # 49 x 12 == 588
        (("monthly", 4900), ("yearly", 58799), False),
        (("weekly", 1000), ("monthly", 4334), True),  # 10 x 52 = 520 <= 43.34 x 12 = 520.08
        (("weekly", 1000), ("monthly", 4333), False),
        (("quarterly", 3000), ("semiannual", 6000), True),
        (("semiannual", 6000), ("quarterly", 2999), False),
    ],
)
def test_upgrade_or_downgrade_by_annualized_amount(old, new, upgrade):
    customer = make_customer()
    old_plan = make_plan(code="old", interval=old[0], amount_cents=old[1])
    new_plan = make_plan(code="new", interval=new[0], amount_cents=new[1])
    current = make_subscription(customer=customer, plan=old_plan, now=NOW - timedelta(days=5))
    result = make_subscription(customer=customer, plan=new_plan, now=NOW)
    current.refresh_from_db()
    if upgrade:
        assert (current.status, current.terminated_at) == ("terminated", NOW)
        assert (result.status, result.started_at, result.previous_subscription_id) == ("active", NOW, current.pk)
    else:
        assert result.pk == current.pk and current.status == "active"
        follower = current.next_subscriptions.get()
        assert follower.status == "pending"


def test_upgrade_ends_the_old_subscription_now_and_keeps_the_anniversary(django_capture_on_commit_callbacks, signals):
    customer = make_customer()
    start = datetime(2024, 1, 20, tzinfo=UTC)
    old = make_subscription(customer=customer, subscription_at=start, billing_time="anniversary", now=start)
    premium = make_plan(code="premium", amount_cents=9900)
    with django_capture_on_commit_callbacks(execute=True):
        new = make_subscription(customer=customer, plan=premium, now=NOW, name="Premium")
    old.refresh_from_db()
    assert (old.status, old.terminated_at) == ("terminated", NOW)
    assert (new.status, new.started_at, new.subscription_at) == ("active", NOW, start)
    assert (new.external_id, new.billing_time, new.name) == ("sub_1", "anniversary", "Premium")
    assert signals == [
        ("terminated", {"subscription_id": old.pk, "upgraded_to_id": new.pk, "downgraded_to_id": None}),
        ("started", {"subscription_id": new.pk}),
    ]
    # The new plan bills from the switch day (its local midnight: periods are day-aligned) to the
    # next anniversary (Mar 20), not from Mar 10 to Apr 10.
    period = periods.subscription_period(new, NOW)
    switch_day = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    assert (period.from_datetime, period.to_datetime) == (switch_day, datetime(2024, 3, 20, tzinfo=UTC))


def test_downgrade_waits_for_the_period_end(django_capture_on_commit_callbacks, signals):
    customer = make_customer()
    premium = make_plan(code="premium", amount_cents=9900)
    startup = make_plan(code="startup", amount_cents=4900)
    current = make_subscription(
        customer=customer, plan=premium, subscription_at=datetime(2024, 2, 1, tzinfo=UTC), now=NOW
    )
    with django_capture_on_commit_callbacks(execute=True):
        answer = make_subscription(customer=customer, plan=startup, now=NOW)
    assert answer.pk == current.pk and answer.status == "active"
    follower = current.next_subscriptions.get()
    assert (follower.status, follower.plan.code, follower.external_id) == ("pending", "startup", "sub_1")
    assert follower.downgrade_at == datetime(2024, 4, 1, tzinfo=UTC)  # the end of March
    assert signals == []
    # Not before the period ends...
    assert services.subscriptions_activate_due(now=datetime(2024, 3, 31, 23, tzinfo=UTC))["downgraded"] == 0
    # ...then at the boundary, even when the task runs late.
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.subscriptions_activate_due(now=datetime(2024, 4, 1, 3, 5, tzinfo=UTC))
    assert counts["downgraded"] == 1
    current.refresh_from_db()
    follower.refresh_from_db()
    boundary = datetime(2024, 4, 1, tzinfo=UTC)
    assert (current.status, current.terminated_at) == ("terminated", boundary)
    assert (follower.status, follower.started_at) == ("active", boundary)
    assert signals == [
        ("terminated", {"subscription_id": current.pk, "upgraded_to_id": None, "downgraded_to_id": follower.pk}),
        ("started", {"subscription_id": follower.pk}),
    ]


def test_a_second_change_replaces_a_waiting_downgrade():
    customer = make_customer()
    premium = make_plan(code="premium", amount_cents=9900)
    startup = make_plan(code="startup", amount_cents=4900)
    basic = make_plan(code="basic", amount_cents=900)
    current = make_subscription(customer=customer, plan=premium, now=NOW)
    make_subscription(customer=customer, plan=startup, now=NOW)
    make_subscription(customer=customer, plan=basic, now=NOW + timedelta(hours=1))
    statuses = dict(current.next_subscriptions.values_list("plan__code", "status"))
    assert statuses == {"startup": "canceled", "basic": "pending"}
    # An upgrade cancels the waiting downgrade too.
    ultra = make_plan(code="ultra", amount_cents=19900)
    new = make_subscription(customer=customer, plan=ultra, now=NOW + timedelta(hours=2))
    assert dict(current.next_subscriptions.values_list("plan__code", "status")) == {
        "startup": "canceled",
        "basic": "canceled",
        "ultra": "active",
    }
    assert new.plan.code == "ultra"


def test_plan_change_of_a_pending_subscription_just_changes_its_plan():
    customer = make_customer()
    pending = make_subscription(customer=customer, subscription_at=NOW + timedelta(days=10), now=NOW)
    cheaper = make_plan(code="basic", amount_cents=900)
    again = make_subscription(customer=customer, plan=cheaper, now=NOW)
    assert again.pk == pending.pk
    pending.refresh_from_db()
    assert (pending.status, pending.plan.code) == ("pending", "basic")


# ---------------------------------------------------------------------------------------------
# Termination, updates, ending_at


def test_terminate_active_cancels_the_waiting_downgrade(django_capture_on_commit_callbacks, signals):
    customer = make_customer()
    current = make_subscription(customer=customer, plan=make_plan(code="premium", amount_cents=9900), now=NOW)
    make_subscription(customer=customer, plan=make_plan(code="basic", amount_cents=900), now=NOW)
    later = NOW + timedelta(days=2)
    with django_capture_on_commit_callbacks(execute=True):
        services.subscription_terminate(subscription=current, now=later)
    current.refresh_from_db()
    follower = current.next_subscriptions.get()
    assert (current.status, current.terminated_at) == ("terminated", later)
    assert (follower.status, follower.canceled_at) == ("canceled", later)
    assert signals == [
        ("terminated", {"subscription_id": current.pk, "upgraded_to_id": None, "downgraded_to_id": None})
    ]
    # Again: nothing changes.
    services.subscription_terminate(subscription=current, now=later + timedelta(days=1))
    current.refresh_from_db()
    assert current.terminated_at == later


def test_terminate_pending_cancels_it_without_a_signal(django_capture_on_commit_callbacks, signals):
    pending = make_subscription(subscription_at=NOW + timedelta(days=1), now=NOW)
    with django_capture_on_commit_callbacks(execute=True):
        services.subscription_terminate(subscription=pending, now=NOW)
    pending.refresh_from_db()
    assert (pending.status, pending.canceled_at) == ("canceled", NOW)
    assert signals == []


def test_update_name_ending_at_and_start_of_a_pending_subscription():
    pending = make_subscription(subscription_at=NOW + timedelta(days=10), now=NOW)
    updated = services.subscription_update(
        subscription=pending, name="Renamed", subscription_at=NOW + timedelta(days=2), now=NOW
    )
    assert (updated.name, updated.subscription_at, updated.status) == ("Renamed", NOW + timedelta(days=2), "pending")
    started = services.subscription_update(subscription=pending, subscription_at=NOW - timedelta(hours=1), now=NOW)
    assert (started.status, started.started_at) == ("active", NOW - timedelta(hours=1))
    with pytest.raises(PlansError) as caught:
        services.subscription_update(subscription=started, subscription_at=NOW + timedelta(days=5), now=NOW)
    assert caught.value.details == {"subscription_at": ["cannot_be_changed_once_started"]}
    ended = services.subscription_update(subscription=started, ending_at=NOW + timedelta(days=30), now=NOW)
    assert ended.ending_at == NOW + timedelta(days=30)
    cleared = services.subscription_update(subscription=started, ending_at=None, now=NOW)
    assert cleared.ending_at is None


def test_ending_at_terminates_at_that_instant():
    end = NOW + timedelta(days=3, hours=5)
    subscription = make_subscription(ending_at=end, now=NOW)
    assert services.subscriptions_activate_due(now=end - timedelta(seconds=1))["ended"] == 0
    assert services.subscriptions_activate_due(now=end + timedelta(minutes=30))["ended"] == 1
    subscription.refresh_from_db()
    assert (subscription.status, subscription.terminated_at) == ("terminated", end)


def test_task_and_schedule(settings):
    start = datetime(2020, 1, 1, tzinfo=UTC)
    subscription = make_subscription(subscription_at=datetime(2099, 1, 1, tzinfo=UTC), now=start)
    Subscription.objects.filter(pk=subscription.pk).update(subscription_at=start)
    assert activate_due_subscriptions.apply().get() == {"activated": 1, "ended": 0, "downgraded": 0}
    import io

    from django_celery_beat.models import PeriodicTask

    call_command("setup_periodic_tasks", stdout=io.StringIO())
    task = PeriodicTask.objects.get(task="plans.tasks.activate_due_subscriptions")
    assert (task.crontab.minute, task.crontab.hour) == ("5", "*")


def test_trial_end_counts_from_the_first_start_of_the_chain():
    customer = make_customer()
    trial_plan = make_plan(code="trial", amount_cents=4900, trial_period=Decimal("14"))
    bigger = make_plan(code="bigger", amount_cents=9900, trial_period=Decimal("14"))
    first = make_subscription(customer=customer, plan=trial_plan, now=NOW)
    assert periods.trial_end(first) == NOW + timedelta(days=14)
    second = make_subscription(customer=customer, plan=bigger, now=NOW + timedelta(days=3))
    assert periods.trial_end(second) == NOW + timedelta(days=14)
    assert (
        periods.trial_end(make_subscription(customer=make_customer(external_id="x"), external_id="x", now=NOW)) is None
    )


def test_subscription_period_uses_the_customers_timezone(organization):
    organization.timezone = "Asia/Tokyo"
    organization.save()
    tokyo = make_subscription(
        customer=make_customer(external_id="t"),
        external_id="t",
        subscription_at=datetime(2024, 1, 1, tzinfo=UTC),
        now=NOW,
    )
    la = make_subscription(
        customer=make_customer(external_id="l", timezone="America/Los_Angeles"),
        external_id="l",
        subscription_at=datetime(2024, 1, 1, tzinfo=UTC),
        now=NOW,
    )
    assert periods.subscription_timezone(tokyo) == "Asia/Tokyo"
    assert periods.subscription_period(tokyo, datetime(2024, 2, 10, tzinfo=UTC)).from_datetime == datetime(
        2024, 1, 31, 15, tzinfo=UTC
    )
    assert periods.subscription_period(la, datetime(2024, 2, 10, tzinfo=UTC)).from_datetime == datetime(
        2024, 2, 1, 8, tzinfo=UTC
    )
