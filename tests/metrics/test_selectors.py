"""Unmatched and skipped events, capped counts, and the settings the usage queries rely on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from customers.models import Customer
from metrics import selectors
from metrics.models import Event
from metrics.signals import known_subscription_ids_requested
from tests.factories.customers import make_customer
from tests.factories.metrics import make_event, make_metric

pytestmark = pytest.mark.django_db

T = datetime(2026, 1, 5, tzinfo=UTC)


def ids(queryset) -> list[str]:
    return sorted(e.transaction_id for e in queryset)


def test_unmatched_events_have_an_unknown_code_or_subscription(no_subscription_source):
    make_metric(code="calls")
    make_metric(code="retired", deleted_at=T)
    make_event(transaction_id="ok", code="calls", external_subscription_id="sub_known", timestamp=T)
    make_event(transaction_id="no_metric", code="typo", external_subscription_id="sub_known", timestamp=T)
    make_event(transaction_id="deleted_metric", code="retired", external_subscription_id="sub_known", timestamp=T)
    make_event(transaction_id="no_sub", code="calls", external_subscription_id="sub_ghost", timestamp=T)

    assert ids(selectors.unmatched_events()) == ["deleted_metric", "no_metric"]
    assert ids(selectors.unmatched_events(known_subscription_ids=["sub_known"])) == [
        "deleted_metric",
        "no_metric",
        "no_sub",
    ]
    # A values_list queryset works too (here customers stand in for subscriptions).
    make_customer(external_id="sub_known")
    known = Customer.objects.values_list("external_id")
    assert ids(selectors.unmatched_events(known_subscription_ids=known)) == ["deleted_metric", "no_metric", "no_sub"]


def test_apps_to_the_right_can_tell_which_subscriptions_exist(no_subscription_source):
    make_metric(code="calls")
    make_event(transaction_id="ok", code="calls", external_subscription_id="sub_known", timestamp=T)
    make_event(transaction_id="no_sub", code="calls", external_subscription_id="sub_ghost", timestamp=T)

    def receiver(sender, **kwargs):
        return ["sub_known"]

    known_subscription_ids_requested.connect(receiver)
    try:
        assert ids(selectors.unmatched_events()) == ["no_sub"]
    finally:
        known_subscription_ids_requested.disconnect(receiver)
    assert ids(selectors.unmatched_events()) == []


def test_with_plans_connected_an_event_of_an_existing_subscription_is_matched():
    from tests.factories.plans import make_subscription

    make_metric(code="calls")
    make_subscription(external_id="sub_real")
    make_event(transaction_id="ok", code="calls", external_subscription_id="sub_real", timestamp=T)
    make_event(transaction_id="no_sub", code="calls", external_subscription_id="sub_ghost", timestamp=T)

    assert ids(selectors.unmatched_events()) == ["no_sub"]


def test_invalid_events_of_a_unique_count_are_those_without_a_scalar():
    metric = make_metric(code="seats", aggregation_type="unique_count_agg", field_name="user")
    make_event(transaction_id="ok", code="seats", timestamp=T, properties={"user": "ann"})
    make_event(transaction_id="number", code="seats", timestamp=T, properties={"user": 7})
    make_event(transaction_id="missing", code="seats", timestamp=T, properties={})
    make_event(transaction_id="null", code="seats", timestamp=T, properties={"user": None})
    make_event(transaction_id="object", code="seats", timestamp=T, properties={"user": {"id": 1}})

    assert ids(selectors.invalid_events(metric)) == ["missing", "null", "object"]
    count = make_metric(code="seats_count", aggregation_type="count_agg")
    assert ids(selectors.invalid_events(count)) == []


def test_capped_count_is_exact_up_to_the_cap():
    for n in range(5):
        make_event(timestamp=T, transaction_id=f"t{n}")

    assert selectors.capped_count(Event.objects.all(), limit=10) == 5
    assert selectors.capped_count(Event.objects.all(), limit=5) == 5
    assert selectors.capped_count(Event.objects.all(), limit=2) >= 3


@pytest.mark.postgres
def test_usage_queries_are_never_prepared_server_side():
    """shared/PERFORMANCE.md: a generic plan is 5-7x slower for a subscription with many events."""
    from psycopg import ClientCursor

    connection.ensure_connection()
    assert connection.connection.prepare_threshold is None
    with connection.cursor() as cursor:
        assert isinstance(cursor.cursor, ClientCursor)  # parameters bound client-side: planned with values
