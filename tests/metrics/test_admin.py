"""The metrics admin: metrics with filters inline and soft delete, events read-only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from metrics.models import BillableMetric, Event
from tests.factories.metrics import make_event, make_metric

pytestmark = pytest.mark.django_db

T = datetime(2026, 1, 5, tzinfo=UTC)


def metric_form(**fields):
    data = {
        "name": "Storage",
        "code": "storage",
        "description": "",
        "aggregation_type": "sum_agg",
        "field_name": "gb",
        "weighted_interval": "",
        "rounding_function": "",
        "rounding_precision": "",
        "filters-TOTAL_FORMS": "1",
        "filters-INITIAL_FORMS": "0",
        "filters-MIN_NUM_FORMS": "0",
        "filters-MAX_NUM_FORMS": "1000",
        "filters-0-key": "region",
        "filters-0-values": '["eu", "us"]',
    }
    data.update(fields)
    return data


def test_create_a_metric_with_a_filter_inline(admin_client):
    response = admin_client.post("/admin/metrics/billablemetric/add/", metric_form())

    assert response.status_code == 302, response.content.decode()[:2000]
    metric = BillableMetric.objects.get()
    assert [(f.key, f.values) for f in metric.filters.all()] == [("region", ["eu", "us"])]


def test_the_admin_applies_lagos_rules(admin_client):
    response = admin_client.post(
        "/admin/metrics/billablemetric/add/", metric_form(aggregation_type="max_agg", recurring="on")
    )

    assert response.status_code == 200
    assert "cannot be recurring" in response.content.decode()
    make_metric(code="taken")
    response = admin_client.post("/admin/metrics/billablemetric/add/", metric_form(code="taken"))
    assert "already uses this code" in response.content.decode()
    assert BillableMetric.objects.count() == 1


def test_deleting_a_metric_in_the_admin_is_soft(admin_client):
    metric = make_metric(code="calls")

    response = admin_client.post(f"/admin/metrics/billablemetric/{metric.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    metric.refresh_from_db()
    assert metric.deleted_at is not None
    listed = admin_client.get("/admin/metrics/billablemetric/", {"state": "deleted"})
    assert "calls" in listed.content.decode()


def test_event_lists_and_the_unmatched_listing(admin_client, no_subscription_source):
    make_metric(code="calls")
    make_event(transaction_id="tx_matched", code="calls", timestamp=T)
    make_event(transaction_id="tx_orphan", code="typo", timestamp=T)

    events = admin_client.get("/admin/metrics/event/", {"code": "calls"})
    assert events.status_code == 200
    assert "tx_matched" in events.content.decode()
    assert "tx_orphan" not in events.content.decode()
    found = admin_client.get("/admin/metrics/event/", {"q": "tx_orphan"})
    assert "tx_orphan" in found.content.decode()

    unmatched = admin_client.get("/admin/metrics/unmatchedevent/")
    assert unmatched.status_code == 200
    assert "tx_orphan" in unmatched.content.decode()
    assert "tx_matched" not in unmatched.content.decode()


def test_events_are_read_only(admin_client):
    event = make_event(transaction_id="tx_1", timestamp=T, properties={"gb": 1})

    assert admin_client.get("/admin/metrics/event/add/").status_code == 403
    page = admin_client.get(f"/admin/metrics/event/{event.pk}/change/")
    assert page.status_code == 200
    assert event.lago_id in page.content.decode()
    assert admin_client.post(f"/admin/metrics/event/{event.pk}/change/", {"code": "x"}).status_code == 403
    assert admin_client.post(f"/admin/metrics/event/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Event.objects.get().code == "api_calls"
