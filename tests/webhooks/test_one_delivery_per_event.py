"""One delivery per (event, endpoint) is the database's rule, not a check before the insert."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from tests.webhooks.conftest import register
from webhooks import services
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


def test_a_scheduled_event_is_written_once_per_endpoint_however_often_it_is_emitted(api, receiver):
    register(api, receiver.url)
    register(api, receiver.url + "/second")

    for _ in range(3):
        with transaction.atomic():
            services.webhook_emit(
                webhook_type="subscription.termination_alert",
                object_type="subscription",
                object_id="sub_1",
                payload={"external_id": "sub_1"},
                event_key="subscription.termination_alert:sub_1:2025-03-01:15",
            )

    assert WebhookDelivery.objects.count() == 2
    assert sorted(WebhookDelivery.objects.values_list("endpoint_id", flat=True)) == sorted(
        WebhookEndpoint.objects.values_list("pk", flat=True)
    )


def test_the_database_refuses_a_second_delivery_of_one_event_to_one_endpoint(api, receiver):
    register(api, receiver.url)
    [first] = services.webhook_emit(
        webhook_type="customer.created", object_type="customer", object_id="c1", payload={"external_id": "c1"}
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookDelivery.objects.create(endpoint=first.endpoint, event_key=first.event_key, body="{}")
    # Each ordinary emission is an event of its own.
    services.webhook_emit(
        webhook_type="customer.created", object_type="customer", object_id="c1", payload={"external_id": "c1"}
    )
    assert WebhookDelivery.objects.values("event_key").distinct().count() == 2
