"""The webhooks admin: endpoints with recent deliveries and a success rate, the secret rotation,
deliveries filterable with their payload and attempts, and the resend action."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from tests.webhooks.conftest import register
from webhooks import keys
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivered(api, receiver, django_capture_on_commit_callbacks, settings) -> dict[str, Any]:
    settings.TOLLGATE_WEBHOOK_RETRY_DELAYS = [60]  # the failed first delivery waits (and the second behind it)
    endpoint = register(api, receiver.url)
    receiver.statuses = [500]
    with django_capture_on_commit_callbacks(execute=True):
        for name in ("one", "two"):
            api.post("/api/v1/customers", {"customer": {"external_id": name, "name": name}})
    return endpoint


def test_endpoints_list_shows_deliveries_and_success_rate(admin_client, delivered):
    WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).update(status=DeliveryStatus.FAILED)
    page = admin_client.get(reverse("admin:webhooks_webhookendpoint_changelist"))
    assert page.status_code == 200
    assert "0.0%" in page.content.decode()  # the one finished delivery failed
    change = admin_client.get(reverse("admin:webhooks_webhookendpoint_change", args=[delivered["lago_id"]]))
    assert change.status_code == 200
    assert "customer.created" in change.content.decode()
    assert delivered["signing_secret"] not in change.content.decode()


def test_deliveries_filter_show_payload_and_attempts_and_resend(admin_client, receiver, delivered):
    listing = admin_client.get(reverse("admin:webhooks_webhookdelivery_changelist"), {"status": "pending"})
    assert listing.status_code == 200
    pending = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).order_by("id").first()
    detail = admin_client.get(reverse("admin:webhooks_webhookdelivery_change", args=[pending.pk])).content.decode()
    assert "&quot;webhook_type&quot;: &quot;customer.created&quot;" in detail
    assert "try again" in detail  # the failed attempt's response excerpt, inline

    failed = WebhookDelivery.objects.get(pk=pending.pk)
    WebhookDelivery.objects.filter(pk=failed.pk).update(status=DeliveryStatus.FAILED)
    response = admin_client.post(
        reverse("admin:webhooks_webhookdelivery_changelist"),
        {"action": "resend", "_selected_action": [failed.pk]},
    )
    assert response.status_code == 302
    failed.refresh_from_db()
    # The resent delivery waits behind nothing older: the sweep (or its task) sends it.
    assert failed.status in (DeliveryStatus.PENDING, DeliveryStatus.SUCCEEDED)


def test_rotate_secret_action_shows_the_new_secret_once(admin_client, delivered):
    response = admin_client.post(
        reverse("admin:webhooks_webhookendpoint_changelist"),
        {"action": "rotate_secret", "_selected_action": [delivered["lago_id"]]},
        follow=True,
    )
    endpoint = WebhookEndpoint.objects.get()
    secret = keys.decrypt(endpoint.signing_secret_encrypted)
    assert secret != delivered["signing_secret"]
    assert secret in response.content.decode()
    assert keys.decrypt(endpoint.previous_signing_secret_encrypted) == delivered["signing_secret"]


def test_an_endpoint_added_in_the_admin_is_checked_and_its_secret_shown(admin_client, receiver, settings):
    url = reverse("admin:webhooks_webhookendpoint_add")
    ok = admin_client.post(
        url, {"webhook_url": receiver.url, "signature_algo": "hmac", "name": "", "event_types": "null"}, follow=True
    )
    assert ok.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert keys.decrypt(endpoint.signing_secret_encrypted) in ok.content.decode()

    settings.TOLLGATE_WEBHOOKS_ALLOW_PRIVATE_URLS = False
    refused = admin_client.post(
        url, {"webhook_url": "http://10.1.2.3/x", "signature_algo": "jwt", "event_types": "null"}
    )
    assert refused.status_code == 200  # the form again, with the error
    assert "url_is_private" in refused.content.decode()
    assert WebhookEndpoint.objects.count() == 1
