"""/api/v1/billable_metrics: Lago's shapes, validation codes, soft delete."""

from __future__ import annotations

import pytest

from metrics.models import BillableMetric
from metrics.signals import billable_metric_deleted
from tests.factories.metrics import make_metric

pytestmark = pytest.mark.django_db


def create(api, **fields):
    body = {"name": "Storage", "code": "storage", "aggregation_type": "sum_agg", "field_name": "gb", **fields}
    return api.post("/api/v1/billable_metrics", {"billable_metric": body})


def details(response):
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "validation_errors"
    return response.json()["error_details"]


def test_create_answers_lagos_shape(api):
    response = create(
        api,
        description="GB stored",
        rounding_function="ceil",
        rounding_precision=2,
        filters=[{"key": "region", "values": ["us", "eu", "us"]}, {"key": "tier", "values": ["gold"]}],
    )

    assert response.status_code == 200, response.content
    body = response.json()["billable_metric"]
    metric = BillableMetric.objects.get()
    assert body == {
        "lago_id": str(metric.id),
        "name": "Storage",
        "code": "storage",
        "description": "GB stored",
        "aggregation_type": "sum_agg",
        "weighted_interval": None,
        "recurring": False,
        "rounding_function": "ceil",
        "rounding_precision": 2,
        "created_at": body["created_at"],
        "field_name": "gb",
        "expression": None,
        "active_subscriptions_count": 0,
        "draft_invoices_count": 0,
        "plans_count": 0,
        "filters": [{"key": "region", "values": ["us", "eu"]}, {"key": "tier", "values": ["gold"]}],
    }
    assert body["created_at"].endswith("Z")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": None, "code": ""}, {"name": ["value_is_mandatory"], "code": ["value_is_mandatory"]}),
        ({"aggregation_type": "median_agg"}, {"aggregation_type": ["value_is_invalid"]}),
        ({"aggregation_type": None}, {"aggregation_type": ["value_is_invalid"]}),
        ({"field_name": None}, {"field_name": ["value_is_mandatory"]}),
        ({"aggregation_type": "max_agg", "recurring": True}, {"recurring": ["not_compatible_with_aggregation_type"]}),
        (
            {"aggregation_type": "latest_agg", "recurring": True},
            {"recurring": ["not_compatible_with_aggregation_type"]},
        ),
        ({"aggregation_type": "weighted_sum_agg"}, {"weighted_interval": ["value_is_invalid"]}),
        ({"weighted_interval": "hours"}, {"weighted_interval": ["value_is_invalid"]}),
        ({"rounding_function": "truncate"}, {"rounding_function": ["value_is_invalid"]}),
        ({"rounding_precision": "two"}, {"rounding_precision": ["value_is_invalid"]}),
        ({"rounding_precision": 99}, {"rounding_precision": ["value_is_invalid"]}),
        ({"recurring": "yes"}, {"recurring": ["value_is_invalid"]}),
        ({"name": 12}, {"name": ["value_is_invalid"]}),
        ({"expression": "event.properties.a *"}, {"expression": ["invalid_expression"]}),
        ({"filters": [{"key": "region", "values": []}]}, {"values": ["value_is_mandatory"]}),
        ({"filters": [{"key": "", "values": ["a"]}]}, {"filters": ["value_is_invalid"]}),
        ({"filters": "region"}, {"filters": ["value_is_invalid"]}),
        (
            {"filters": [{"key": "a", "values": ["x"]}, {"key": "a", "values": ["y"]}]},
            {"filters": ["value_is_invalid"]},
        ),
    ],
)
def test_validation_codes(api, fields, expected):
    assert details(create(api, **fields)) == expected
    assert not BillableMetric.objects.exists()


def test_count_agg_drops_a_field_name(api):
    response = create(api, aggregation_type="count_agg", field_name="gb", code="calls")

    assert response.status_code == 200
    assert response.json()["billable_metric"]["field_name"] is None


def test_recurring_weighted_sum(api):
    response = create(api, aggregation_type="weighted_sum_agg", weighted_interval="seconds", recurring=True)

    assert response.status_code == 200, response.content
    assert response.json()["billable_metric"]["weighted_interval"] == "seconds"
    assert response.json()["billable_metric"]["recurring"] is True


def test_codes_are_unique_among_live_metrics(api):
    assert create(api).status_code == 200
    assert details(create(api)) == {"code": ["value_already_exist"]}

    assert api.delete("/api/v1/billable_metrics/storage").status_code == 200
    assert create(api).status_code == 200  # a deleted metric frees its code
    assert BillableMetric.objects.count() == 2


def test_a_missing_root_is_400(api):
    assert api.post("/api/v1/billable_metrics", {"name": "x"}).status_code == 400


def test_find_and_list(api):
    make_metric(code="calls")
    make_metric(code="storage", aggregation_type="sum_agg", field_name="gb", filters={"region": ["eu"]})
    make_metric(code="gone", deleted_at="2026-01-01T00:00:00Z")

    found = api.get("/api/v1/billable_metrics/storage")
    assert found.status_code == 200
    assert found.json()["billable_metric"]["filters"] == [{"key": "region", "values": ["eu"]}]
    assert "plans_count" not in found.json()["billable_metric"]

    missing = api.get("/api/v1/billable_metrics/gone")
    assert missing.status_code == 404
    assert missing.json() == {"status": 404, "error": "Not Found", "code": "billable_metric_not_found"}

    listed = api.get("/api/v1/billable_metrics", {"per_page": 1}).json()
    assert [m["code"] for m in listed["billable_metrics"]] == ["storage"]  # newest first
    assert listed["meta"] == {"current_page": 1, "next_page": 2, "prev_page": None, "total_pages": 2, "total_count": 2}


def test_update_changes_only_the_fields_sent(api):
    create(api, description="old", filters=[{"key": "region", "values": ["eu"]}])

    response = api.put(
        "/api/v1/billable_metrics/storage",
        {"billable_metric": {"name": "Disk", "code": "disk", "filters": [{"key": "tier", "values": ["gold"]}]}},
    )

    assert response.status_code == 200, response.content
    body = response.json()["billable_metric"]
    assert (body["name"], body["code"], body["description"], body["field_name"]) == ("Disk", "disk", "old", "gb")
    assert body["filters"] == [{"key": "tier", "values": ["gold"]}]
    assert api.get("/api/v1/billable_metrics/storage").status_code == 404


def test_update_validates_the_resulting_metric(api):
    create(api)
    make_metric(code="calls")

    assert details(api.put("/api/v1/billable_metrics/storage", {"billable_metric": {"code": "calls"}})) == {
        "code": ["value_already_exist"]
    }
    response = api.put("/api/v1/billable_metrics/storage", {"billable_metric": {"aggregation_type": "max_agg"}})
    assert response.status_code == 200
    assert details(api.put("/api/v1/billable_metrics/storage", {"billable_metric": {"recurring": True}})) == {
        "recurring": ["not_compatible_with_aggregation_type"]
    }
    assert BillableMetric.objects.get(code="storage").recurring is False


def test_update_of_an_unknown_metric_is_404(api):
    response = api.put("/api/v1/billable_metrics/nope", {"billable_metric": {"name": "x"}})

    assert response.status_code == 404
    assert response.json()["code"] == "billable_metric_not_found"


def test_a_metric_priced_by_a_charge_keeps_what_it_measures(api):
    from plans.models import Charge, Plan

    create(api)
    metric = BillableMetric.objects.get()
    plan = Plan.objects.create(name="Pro", code="pro", interval="monthly", amount=0, amount_currency="USD")
    Charge.objects.create(plan=plan, billable_metric=metric, charge_model="standard")

    response = api.put(
        "/api/v1/billable_metrics/storage",
        {"billable_metric": {"name": "Disk", "code": "disk", "field_name": "tb", "aggregation_type": "max_agg"}},
    )

    assert response.status_code == 200, response.content
    body = response.json()["billable_metric"]
    assert (body["name"], body["code"], body["field_name"], body["aggregation_type"]) == (
        "Disk",
        "storage",
        "gb",
        "sum_agg",
    )


def test_delete_is_soft_and_announced_after_commit(api, django_capture_on_commit_callbacks):
    create(api)
    received = []

    def receiver(sender, billable_metric_id, **kwargs):
        received.append(billable_metric_id)

    billable_metric_deleted.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = api.delete("/api/v1/billable_metrics/storage")
    finally:
        billable_metric_deleted.disconnect(receiver)

    assert response.status_code == 200
    assert response.json()["billable_metric"]["code"] == "storage"
    metric = BillableMetric.objects.get()
    assert metric.deleted_at is not None
    assert received == [metric.id]
    assert api.delete("/api/v1/billable_metrics/storage").status_code == 404
