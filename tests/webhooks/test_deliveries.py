"""Deliveries of events emitted by the real flows (API and billing run), to a real HTTP receiver
on loopback: signatures, retries with one unique key, order per endpoint, lost tasks, rollbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from django.db import transaction
from django.utils import timezone

import webhooks
from customers import services as customer_services
from customers.models import Organization
from invoicing.models import Invoice
from tests.factories.customers import make_customer
from tests.factories.invoicing import bill, events, utc
from tests.factories.plans import make_plan, standard_charge
from tests.webhooks.conftest import register
from webhooks import tasks
from webhooks.models import DeliveryStatus, WebhookDelivery

pytestmark = pytest.mark.django_db


def _ok(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.content
    return answer.json()


def _create_customer(api, external_id: str = "acme") -> dict[str, Any]:
    body = {"customer": {"external_id": external_id, "name": external_id.title(), "currency": "USD"}}
    return _ok(api.post("/api/v1/customers", body))["customer"]


def test_the_billing_story_is_announced_with_the_api_serialization(api, receiver, flows, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    register(api, receiver.url)

    customer = flows(lambda: _create_customer(api))
    assert receiver.types() == ["customer.created"]
    announced = receiver.requests[0].json
    assert announced["object_type"] == "customer"
    assert announced["organization_id"] == str(Organization.current().lago_id)
    assert announced["customer"] == customer  # the very object the API answered

    flows(lambda: _ok(api.put("/api/v1/organizations", {"organization": {"name": "Tollgate Inc"}})))
    flows(lambda: _create_customer(api))  # the upsert of a known external_id is an update
    assert receiver.types()[-1] == "customer.updated"

    make_plan(code="startup", amount_cents=4900, charges=[standard_charge()])
    flows(
        lambda: _ok(
            api.post(
                "/api/v1/subscriptions",
                {
                    "subscription": {
                        "external_customer_id": "acme",
                        "plan_code": "startup",
                        "external_id": "sub_acme",
                        "billing_time": "calendar",
                        "subscription_at": "2024-01-01T00:00:00Z",  # back-dated: still announced
                    }
                },
            )
        )
    )
    started = receiver.of_type("subscription.started")
    assert [r.json["subscription"]["external_id"] for r in started] == ["sub_acme"]

    # As if the API call had been made on 2024-01-01: the catch-up policy never bills a period that
    # ended before Tollgate was told of the subscription.
    type(_subscription("sub_acme")).objects.filter(external_id="sub_acme").update(recorded_at=utc(2024, 1, 1))
    events(started_subscription := _subscription("sub_acme"), [utc(2024, 1, 10)])
    flows(lambda: bill(utc(2024, 2, 1, 0, 10)))
    created = receiver.of_type("invoice.created")
    assert len(created) == 1, (receiver.types(), list(Invoice.objects.values_list("status", "invoice_type")))
    invoice = Invoice.objects.get(pk=created[0].json["invoice"]["lago_id"])
    answered = _ok(api.get(f"/api/v1/invoices/{invoice.pk}"))["invoice"]
    sent = created[0].json["invoice"]
    assert set(sent) == set(answered)
    assert {k: sent[k] for k in ("number", "total_amount_cents", "fees", "customer")} == {
        k: answered[k] for k in ("number", "total_amount_cents", "fees", "customer")
    }

    # A partial manual payment leaves payment_status pending: no payment_status_updated (a change only).
    flows(
        lambda: _ok(
            api.post(
                "/api/v1/payments", {"payment": {"invoice_id": str(invoice.pk), "amount_cents": 100, "reference": "p1"}}
            )
        )
    )
    assert [r.json["payment"]["amount_cents"] for r in receiver.of_type("payment.succeeded")] == [100]
    assert receiver.of_type("invoice.payment_status_updated") == []

    flows(lambda: _ok(api.post(f"/api/v1/invoices/{invoice.pk}/void")))
    assert [r.json["invoice"]["status"] for r in receiver.of_type("invoice.voided")] == ["voided"]

    flows(lambda: _ok(api.delete(f"/api/v1/subscriptions/{started_subscription.external_id}")))
    terminated = receiver.of_type("subscription.terminated")
    assert [r.json["subscription"]["status"] for r in terminated] == ["terminated"]
    # Every delivery succeeded at its first attempt, and each has its own unique key.
    assert WebhookDelivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).count() == 0
    assert len({r.headers["x-lago-unique-key"] for r in receiver.requests}) == len(receiver.requests)


def _subscription(external_id: str) -> Any:
    from plans.models import Subscription

    return Subscription.objects.get(external_id=external_id)


def test_a_full_manual_payment_updates_the_payment_status(api, receiver, flows):
    from tests.factories.payments import make_finalized_invoice

    invoice = make_finalized_invoice(customer=make_customer(external_id="payer", payment_provider="manual"))
    register(api, receiver.url, event_types=["invoice.payment_status_updated", "payment.succeeded"])
    body = {"payment": {"invoice_id": str(invoice.pk), "amount_cents": 10_000, "reference": "full"}}
    flows(lambda: _ok(api.post("/api/v1/payments", body)))

    assert receiver.types() == ["payment.succeeded", "invoice.payment_status_updated"]
    assert receiver.requests[1].json["invoice"]["payment_status"] == "succeeded"


def test_both_signature_schemes_verify_and_a_tampered_body_fails(api, receiver, flows, settings):
    jwt_endpoint = register(api, f"{receiver.url}/jwt", signature_algo="jwt")
    hmac_endpoint = register(api, f"{receiver.url}/hmac", signature_algo="hmac")
    flows(lambda: _create_customer(api))

    by_path = {request.path: request for request in receiver.requests}
    public_pem = base64.b64decode(_ok(api.get("/api/v1/webhooks/json_public_key"))["webhook"]["public_key"])
    hmac_key = _ok(api.get("/api/v1/organizations"))["organization"]["hmac_key"]

    signed = by_path["/hooks/jwt"]
    assert signed.headers["x-lago-signature-algorithm"] == "jwt"
    assert signed.headers["content-type"] == "application/json"
    claims = jwt.decode(
        signed.headers["x-lago-signature"], public_pem, algorithms=["RS256"], issuer=settings.TOLLGATE_PUBLIC_URL
    )
    assert claims["data"] == signed.body.decode()
    webhooks.verify(signed.body, signed.headers["tollgate-signature"], jwt_endpoint["signing_secret"])

    maced = by_path["/hooks/hmac"]
    assert maced.headers["x-lago-signature-algorithm"] == "hmac"
    expected = base64.b64encode(hmac.new(hmac_key.encode(), maced.body, hashlib.sha256).digest()).decode()
    assert maced.headers["x-lago-signature"] == expected
    webhooks.verify(maced.body, maced.headers["tollgate-signature"], hmac_endpoint["signing_secret"])
    assert json.loads(maced.body)["organization_id"] == hmac_endpoint["lago_organization_id"]

    tampered = maced.body.replace(b"Acme", b"Evil")
    with pytest.raises(webhooks.SignatureError):
        webhooks.verify(tampered, maced.headers["tollgate-signature"], hmac_endpoint["signing_secret"])
    assert (
        maced.headers["x-lago-signature"]
        != base64.b64encode(hmac.new(hmac_key.encode(), tampered, hashlib.sha256).digest()).decode()
    )
    with pytest.raises(webhooks.SignatureError):  # another endpoint's secret
        webhooks.verify(maced.body, maced.headers["tollgate-signature"], jwt_endpoint["signing_secret"])
    timestamp = int(maced.headers["tollgate-signature"].split(",")[0][2:])
    with pytest.raises(webhooks.SignatureError):  # a replay, six minutes later
        webhooks.verify(
            maced.body, maced.headers["tollgate-signature"], hmac_endpoint["signing_secret"], now=timestamp + 360
        )


def test_a_receiver_failing_twice_gets_the_same_delivery_three_times(api, receiver, flows):
    register(api, receiver.url)
    receiver.statuses = [500, 503]

    flows(lambda: _create_customer(api))
    assert len(receiver.requests) == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts_count) == (DeliveryStatus.PENDING, 1)
    flows(tasks.sweep_deliveries)  # the retry is due (delays of 0 s in tests)
    flows(tasks.sweep_deliveries)
    flows(tasks.sweep_deliveries)  # nothing left to send

    assert len(receiver.requests) == 3
    assert len({r.headers["x-lago-unique-key"] for r in receiver.requests}) == 1
    assert receiver.requests[0].headers["x-lago-unique-key"] == str(delivery.unique_key)
    assert len({r.body for r in receiver.requests}) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert [(a.number, a.status_code, a.succeeded) for a in delivery.attempts.all()] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]
    assert delivery.attempts.first().response_excerpt == "try again"


def test_after_the_last_retry_the_delivery_fails_and_can_be_resent(api, receiver, flows):
    from webhooks import services

    register(api, receiver.url)
    receiver.statuses = [500] * 4
    flows(lambda: _create_customer(api))
    for _ in range(4):
        flows(tasks.sweep_deliveries)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts_count, len(receiver.requests)) == (DeliveryStatus.FAILED, 4, 4)

    flows(lambda: services.delivery_resend(delivery=delivery))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts_count, len(receiver.requests)) == (DeliveryStatus.SUCCEEDED, 5, 5)
    assert len({r.headers["x-lago-unique-key"] for r in receiver.requests}) == 1


def test_one_endpoint_s_deliveries_go_in_order_and_a_dead_one_delays_no_other(api, receiver, flows, settings):
    settings.TOLLGATE_WEBHOOK_RETRY_DELAYS = [60]
    register(api, "http://127.0.0.1:9/dead")  # nothing listens on the discard port: refused
    register(api, f"{receiver.url}/ordered")
    receiver.statuses = [500]  # the first delivery fails once

    flows(lambda: _create_customer(api, "first"))
    flows(lambda: _create_customer(api, "second"))
    # The failed first delivery (retry in a minute) holds the second back; the dead endpoint
    # delays nothing here.
    assert [r.json["customer"]["external_id"] for r in receiver.requests] == ["first"]
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())  # the minute has passed
    flows(tasks.sweep_deliveries)
    assert [r.json["customer"]["external_id"] for r in receiver.requests] == ["first", "first", "second"]
    dead = WebhookDelivery.objects.filter(endpoint__webhook_url__endswith="/dead")
    assert DeliveryStatus.SUCCEEDED not in {d.status for d in dead}
    assert all(a.error and a.status_code is None for d in dead for a in d.attempts.all())


def test_a_lost_task_is_sent_by_the_sweep(api, receiver, flows, monkeypatch):
    register(api, receiver.url)

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.deliver_endpoint, "apply_async", broker_down)
    flows(lambda: _create_customer(api))  # the request still answers
    assert receiver.requests == []
    assert WebhookDelivery.objects.get().status == DeliveryStatus.PENDING
    monkeypatch.undo()

    flows(tasks.sweep_deliveries)
    assert receiver.types() == ["customer.created"]
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SUCCEEDED


def test_a_rolled_back_change_leaves_no_delivery(api, receiver, flows):
    register(api, receiver.url)

    def rolled_back() -> None:
        with transaction.atomic():
            customer_services.customer_upsert(external_id="ghost", changes={"name": "Ghost"})
            assert WebhookDelivery.objects.count() == 1  # written in the change's transaction
            raise RuntimeError("the change fails after the customer was saved")

    with pytest.raises(RuntimeError):
        flows(rolled_back)
    assert WebhookDelivery.objects.count() == 0
    assert receiver.requests == []


def test_event_types_filter_what_an_endpoint_receives(api, receiver, flows):
    register(api, receiver.url, event_types=["invoice.created"])
    flows(lambda: _create_customer(api))
    assert receiver.requests == []
    assert not WebhookDelivery.objects.exists()


def test_rotation_signs_with_both_secrets_for_a_day(api, receiver, flows):
    endpoint = register(api, receiver.url)
    rotated = _ok(api.post(f"/api/v1/webhook_endpoints/{endpoint['lago_id']}/rotate_secret"))["webhook_endpoint"]
    flows(lambda: _create_customer(api))

    header = receiver.requests[0].headers["tollgate-signature"]
    assert header.count("v1=") == 2
    webhooks.verify(receiver.requests[0].body, header, rotated["signing_secret"])
    webhooks.verify(receiver.requests[0].body, header, endpoint["signing_secret"])


def test_a_url_turned_private_is_refused_at_delivery(api, receiver, flows, settings):
    register(api, receiver.url)
    settings.TOLLGATE_WEBHOOKS_ALLOW_PRIVATE_URLS = False  # as if its DNS now pointed inside
    flows(lambda: _create_customer(api))

    assert receiver.requests == []
    attempt = WebhookDelivery.objects.get().attempts.get()
    assert attempt.error.startswith("refused")


def test_the_readme_verification_example_verifies_a_real_delivery(api, receiver, flows):
    from pathlib import Path

    from django.conf import settings

    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    snippet = readme.split("```python\nimport hashlib", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec("import hashlib" + snippet, namespace)  # noqa: S102 (our own README)
    endpoint = register(api, receiver.url)
    flows(lambda: _create_customer(api))

    request = receiver.requests[0]
    assert namespace["verify"](request.body, request.headers["tollgate-signature"], endpoint["signing_secret"])
    assert not namespace["verify"](
        request.body + b" ", request.headers["tollgate-signature"], endpoint["signing_secret"]
    )
