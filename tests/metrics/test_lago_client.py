"""Lago's own Python client (lago-python-client) against a live Tollgate."""

from __future__ import annotations

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import BatchEvent, BillableMetric, BillableMetricFilter, Event
from lago_python_client.models.billable_metric import BillableMetricFilters

from metrics.models import BillableMetric as MetricModel
from metrics.models import Event as EventModel

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def client(live_server, api_key) -> Client:
    return Client(api_key=api_key.raw, api_url=live_server.url)


def test_events_create_batch_create_and_find(client):
    created = client.events.create(
        Event(
            transaction_id="tx_1",
            external_subscription_id="sub_1",
            code="storage",
            timestamp=1650893379,
            properties={"gb": 10},
        )
    )

    assert created.transaction_id == "tx_1"
    assert created.timestamp == "2022-04-25T13:29:39.000Z"
    assert created.properties == {"gb": 10}
    assert created.lago_id

    # The client sends "timestamp": null and "properties": null for what it was not given.
    again = client.events.create(
        Event(transaction_id="tx_1", external_subscription_id="sub_1", code="storage", properties={"gb": 10})
    )
    assert again.lago_id == created.lago_id  # an exact replay (no timestamp sent): the stored event
    assert again.timestamp == created.timestamp

    client.events.batch_create(
        BatchEvent(
            events=[
                Event(transaction_id=f"tx_b{i}", external_subscription_id="sub_1", code="storage", timestamp=1700000000)
                for i in range(3)
            ]
        )
    )
    assert EventModel.objects.count() == 4

    found = client.events.find("tx_b1")
    assert found.external_subscription_id == "sub_1"
    assert found.timestamp == "2023-11-14T22:13:20.000Z"

    with pytest.raises(LagoApiError) as refused:
        client.events.create(
            Event(transaction_id="tx_1", external_subscription_id="sub_1", code="storage", properties={"gb": 11})
        )
    assert refused.value.status_code == 422
    with pytest.raises(LagoApiError) as missing:
        client.events.find("nope")
    assert missing.value.status_code == 404


def test_billable_metrics_create_find_all_update_destroy(client):
    created = client.billable_metrics.create(
        BillableMetric(
            name="Storage",
            code="storage",
            aggregation_type="sum_agg",
            field_name="gb",
            recurring=False,
            filters=BillableMetricFilters(__root__=[BillableMetricFilter(key="region", values=["us", "eu"])]),
        )
    )
    assert created.code == "storage"
    assert created.filters.__root__[0].values == ["us", "eu"]

    found = client.billable_metrics.find("storage")
    assert found.lago_id == created.lago_id

    client.billable_metrics.create(BillableMetric(name="Calls", code="calls", aggregation_type="count_agg"))
    listed = client.billable_metrics.find_all({"per_page": 1})
    assert [m.code for m in listed["billable_metrics"]] == ["calls"]
    assert listed["meta"]["total_count"] == 2

    updated = client.billable_metrics.update(BillableMetric(name="Disk"), "storage")
    assert updated.name == "Disk"
    assert updated.field_name == "gb"

    destroyed = client.billable_metrics.destroy("storage")
    assert destroyed.code == "storage"
    assert MetricModel.objects.get(code="storage").deleted_at is not None
    with pytest.raises(LagoApiError) as missing:
        client.billable_metrics.find("storage")
    assert missing.value.status_code == 404


def test_a_metric_with_an_expression_computes_its_field(client):
    created = client.billable_metrics.create(
        BillableMetric(
            name="Storage",
            code="storage_hours",
            aggregation_type="sum_agg",
            field_name="gb_hours",
            expression="event.properties.gb * event.properties.hours",
        )
    )
    assert created.expression == "event.properties.gb * event.properties.hours"

    event = client.events.create(
        Event(
            transaction_id="tx_expr",
            external_subscription_id="sub_1",
            code="storage_hours",
            timestamp=1650893379,
            properties={"gb": 2.5, "hours": 4},
        )
    )
    assert event.properties == {"gb": 2.5, "hours": 4, "gb_hours": "10.0"}

    with pytest.raises(LagoApiError) as refused:
        client.billable_metrics.create(
            BillableMetric(
                name="Bad", code="bad", aggregation_type="sum_agg", field_name="x", expression="round(event.code"
            )
        )
    assert refused.value.status_code == 422
    assert refused.value.response["error_details"] == {"expression": ["invalid_expression"]}


def test_evaluate_expression_call_sends_no_body(client):
    # lago-python-client 1.55.0's billable_metrics.evaluate_expression posts without its
    # input_object (billable_metrics/clients.py), so any server can only answer Lago's refusal of a
    # missing expression. The route itself is tested in tests/metrics/test_expressions.py.
    from lago_python_client.models.billable_metric import (
        BillableMetricEvaluateExpression,
        BillableMetricEvaluateExpressionEvent,
    )

    with pytest.raises(LagoApiError) as refused:
        client.billable_metrics.evaluate_expression(
            BillableMetricEvaluateExpression(
                expression="1 + 1", event=BillableMetricEvaluateExpressionEvent(code="c", timestamp=1, properties={})
            )
        )
    assert refused.value.status_code == 422
    assert refused.value.response["error_details"] == {"expression": ["value_is_mandatory"]}
