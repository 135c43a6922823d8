"""Two requests at once: the customer row lock and the partial unique indexes let one win."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from plans import services
from plans.errors import PlansError
from plans.models import Plan, Subscription
from tests.factories.customers import make_customer
from tests.factories.plans import make_plan, make_subscription

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

NOW = datetime(2024, 3, 10, 12, tzinfo=UTC)


def race(*targets) -> list:
    """Run each target in its own thread, released together; results (or exceptions) in order."""
    barrier = threading.Barrier(len(targets))
    results: list = [None] * len(targets)

    def run(index, target):
        barrier.wait()
        try:
            results[index] = target()
        except Exception as error:
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_the_same_subscription_twice_makes_one():
    customer = make_customer()
    plan = make_plan()

    def create():
        return services.subscription_create(customer=customer, plan=plan, external_id="sub_1", now=NOW)

    results = race(create, create)
    assert all(isinstance(result, Subscription) for result in results), results
    assert results[0].pk == results[1].pk
    assert Subscription.objects.count() == 1


def test_two_customers_racing_for_one_external_id():
    plan = make_plan()
    first, second = make_customer(external_id="a"), make_customer(external_id="b")
    results = race(
        lambda: services.subscription_create(customer=first, plan=plan, external_id="sub_1", now=NOW),
        lambda: services.subscription_create(customer=second, plan=plan, external_id="sub_1", now=NOW),
    )
    errors = [r for r in results if isinstance(r, PlansError)]
    assert len(errors) == 1 and errors[0].details == {"external_id": ["value_already_exist"]}
    assert Subscription.objects.filter(status="active").count() == 1


def test_upgrade_and_terminate_at_once_leave_a_consistent_chain():
    customer = make_customer()
    current = make_subscription(customer=customer, now=NOW)
    premium = make_plan(code="premium", amount_cents=9900)
    later = NOW + timedelta(days=1)
    race(
        lambda: services.subscription_create(customer=customer, plan=premium, external_id="sub_1", now=later),
        lambda: services.subscription_terminate(subscription=current, now=later),
    )
    current.refresh_from_db()
    assert current.status == "terminated"
    # Whichever ran second saw the first's result: at most one active row, never two.
    assert Subscription.objects.filter(external_id="sub_1", status="active").count() <= 1


def test_two_plans_with_one_code():
    def create():
        return services.plan_create(name="P", code="p", interval="monthly", amount_cents=1, amount_currency="USD")

    results = race(create, create)
    assert sorted(type(result).__name__ for result in results) == ["Plan", "PlansError"]
    assert Plan.objects.count() == 1
