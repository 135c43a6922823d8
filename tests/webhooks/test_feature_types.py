"""Feature and plan entitlement webhooks, emitted by the entitlement API's real flows: feature.created,
feature.updated, feature.deleted (Lago's app/services/webhooks/features/*_service.rb: the feature
serializer) and plan.updated when what a plan grants changes (Lago's
Entitlement::PlanEntitlementsUpdateService, FeatureUpdateService, PrivilegeDestroyService), each
delivered to a real loopback receiver after commit."""

from __future__ import annotations

from typing import Any

import pytest

from plans.entitlements import services as entitlements
from tests.factories.plans import make_plan
from tests.webhooks.conftest import register
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db


def _ok(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.content
    return answer.json()


SEATS = {
    "code": "seats",
    "name": "Seats",
    "privileges": [{"code": "max", "value_type": "integer"}, {"code": "sso", "value_type": "boolean"}],
}


def test_a_feature_lifecycle_is_announced_with_the_plans_granting_it(api, receiver, django_capture_on_commit_callbacks):
    startup = make_plan(code="startup")
    make_plan(code="scale")  # grants nothing: never announced
    register(api, receiver.url)

    with django_capture_on_commit_callbacks(execute=True):
        _ok(api.post("/api/v1/features", {"feature": SEATS}))
    assert receiver.types() == ["feature.created"]
    created = receiver.requests[0].json
    assert created["object_type"] == "feature"
    assert created["feature"]["code"] == "seats"
    assert [p["code"] for p in created["feature"]["privileges"]] == ["max", "sso"]

    with django_capture_on_commit_callbacks(execute=True):
        _ok(api.post("/api/v1/plans/startup/entitlements", {"entitlements": {"seats": {"max": 10, "sso": True}}}))
    assert receiver.types()[1:] == ["plan.updated"]
    plan_updated = receiver.requests[1].json
    assert (plan_updated["object_type"], plan_updated["plan"]["lago_id"]) == ("plan", str(startup.pk))

    with django_capture_on_commit_callbacks(execute=True):
        _ok(api.put("/api/v1/features/seats", {"feature": {"name": "Seats included"}}))
    assert receiver.types()[2:] == ["feature.updated", "plan.updated"]
    assert receiver.requests[2].json["feature"]["name"] == "Seats included"

    with django_capture_on_commit_callbacks(execute=True):
        _ok(api.delete("/api/v1/features/seats/privileges/sso"))
    assert receiver.types()[4:] == ["feature.updated", "plan.updated"]
    assert [p["code"] for p in receiver.requests[4].json["feature"]["privileges"]] == ["max"]

    with django_capture_on_commit_callbacks(execute=True):
        _ok(api.delete("/api/v1/features/seats"))
    assert receiver.types()[6:] == ["feature.deleted", "plan.updated"]
    deleted = receiver.requests[6].json["feature"]
    assert (deleted["code"], deleted["name"], [p["code"] for p in deleted["privileges"]]) == (
        "seats",
        "Seats included",
        ["max"],
    )
    assert receiver.requests[7].json["plan"]["lago_id"] == str(startup.pk)


def test_plan_entitlement_removals_are_announced_and_refusals_are_not(
    api, receiver, django_capture_on_commit_callbacks
):
    make_plan(code="startup")
    register(api, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        entitlements.feature_create(code="seats", privileges=SEATS["privileges"])
        entitlements.feature_create(code="sso")
        _ok(api.post("/api/v1/plans/startup/entitlements", {"entitlements": {"seats": {"max": 3}, "sso": {}}}))
        _ok(api.delete("/api/v1/plans/startup/entitlements/seats/privileges/max"))
        _ok(api.delete("/api/v1/plans/startup/entitlements/sso"))
    assert receiver.types() == ["feature.created", "feature.created", "plan.updated", "plan.updated", "plan.updated"]

    before = WebhookDelivery.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        refused = api.post("/api/v1/plans/startup/entitlements", {"entitlements": {"seats": {"max": "many"}}})
        duplicate = api.post("/api/v1/features", {"feature": {"code": "seats"}})
    assert (refused.status_code, duplicate.status_code) == (422, 422)
    # Nothing was written, so nothing is announced: the outbox rows rolled back with the change.
    assert WebhookDelivery.objects.count() == before
    assert len(receiver.requests) == 5


def test_the_types_are_offered_to_endpoints(api):
    endpoint = register(api, "http://127.0.0.1:9/hooks", event_types=["feature.deleted", "plan.updated"])
    assert endpoint["event_types"] == ["feature.deleted", "plan.updated"]
