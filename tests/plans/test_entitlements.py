"""Features, plan entitlements and subscription overrides, through Lago's routes and shapes
(lago-api app/controllers/api/v1/features_controller.rb, plans/entitlements_controller.rb,
subscriptions/entitlements_controller.rb; serializers app/serializers/v1/entitlement/*)."""

from __future__ import annotations

import pytest

from plans.entitlements.models import Entitlement, EntitlementRemoval, Feature, Privilege
from tests.factories.plans import make_plan, make_subscription

pytestmark = pytest.mark.django_db

SEATS = {
    "code": "seats",
    "name": "Number of seats",
    "description": "Number of users that can be added to the account",
    # lago-doc guide/entitlements.mdx: "Create feature with privileges"
    "privileges": [
        {"code": "max", "name": "Maximum seats", "value_type": "integer"},
        {"code": "allow_admin_user", "name": "Allow admin user", "value_type": "boolean"},
        {"code": "tier", "name": "Support tier", "value_type": "select", "config": {"select_options": ["std", "vip"]}},
    ],
}


def create_feature(api, body=SEATS):
    response = api.post("/api/v1/features", {"feature": body})
    assert response.status_code == 200, response.content
    return response.json()["feature"]


def test_feature_crud_in_lagos_shape(api):
    feature = create_feature(api)
    assert feature == {
        "code": "seats",
        "name": "Number of seats",
        "description": "Number of users that can be added to the account",
        "privileges": [
            {"code": "max", "name": "Maximum seats", "value_type": "integer", "config": {}},
            {"code": "allow_admin_user", "name": "Allow admin user", "value_type": "boolean", "config": {}},
            {
                "code": "tier",
                "name": "Support tier",
                "value_type": "select",
                "config": {"select_options": ["std", "vip"]},
            },
        ],
        "created_at": feature["created_at"],
    }
    assert feature["created_at"].endswith("Z")

    listed = api.get("/api/v1/features", {"search_term": "users"}).json()
    assert [f["code"] for f in listed["features"]] == ["seats"]
    assert listed["meta"]["total_count"] == 1

    # PUT is partial: a known privilege is renamed and a select gains options; a new code is added.
    updated = api.put(
        "/api/v1/features/seats",
        {
            "feature": {
                "name": "Seats",
                "privileges": [
                    {"code": "tier", "name": "Tier", "config": {"select_options": ["vip", "gold"]}},
                    {"code": "sso", "value_type": "boolean"},
                ],
            }
        },
    ).json()["feature"]
    assert updated["name"] == "Seats"
    assert updated["description"] == SEATS["description"]
    assert [(p["code"], p["name"], p["config"]) for p in updated["privileges"]] == [
        ("max", "Maximum seats", {}),
        ("allow_admin_user", "Allow admin user", {}),
        ("tier", "Tier", {"select_options": ["std", "vip", "gold"]}),
        ("sso", None, {}),
    ]

    dropped = api.delete("/api/v1/features/seats/privileges/sso")
    assert dropped.status_code == 200
    assert [p["code"] for p in dropped.json()["feature"]["privileges"]] == ["max", "allow_admin_user", "tier"]

    deleted = api.delete("/api/v1/features/seats")
    assert deleted.status_code == 200
    assert deleted.json()["feature"]["code"] == "seats"
    assert not Feature.objects.exists() and not Privilege.objects.exists()
    assert api.get("/api/v1/features/seats").json() == {
        "status": 404,
        "error": "Not Found",
        "code": "feature_not_found",
    }


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({"name": "x"}, {"code": ["value_is_mandatory"]}),
        ({"code": "a", "privileges": [{"code": "p"}, {"code": "p"}]}, {"privilege.code": ["value_is_duplicated"]}),
        (
            {"code": "a", "privileges": [{"code": "p", "value_type": "float"}]},
            {"privilege.value_type": ["value_is_invalid"]},
        ),
        (
            {"code": "a", "privileges": [{"code": "p", "value_type": "select"}]},
            {"privilege.config": ["invalid_format"]},
        ),
        (
            {"code": "a", "privileges": [{"code": "p", "value_type": "integer", "config": {"select_options": ["x"]}}]},
            {"privilege.config": ["invalid_format"]},
        ),
        ({"code": "a", "description": "x" * 601}, {"description": ["value_is_invalid"]}),
    ],
)
def test_feature_refusals(api, body, details):
    response = api.post("/api/v1/features", {"feature": body})
    assert response.status_code == 422, response.content
    assert response.json()["error_details"] == details
    assert not Feature.objects.exists()


def test_feature_code_is_unique(api):
    create_feature(api)
    response = api.post("/api/v1/features", {"feature": {"code": "seats"}})
    assert response.status_code == 422
    assert response.json()["error_details"] == {"code": ["value_already_exist"]}


def test_plan_entitlements_and_a_subscription_override(api):
    create_feature(api)
    create_feature(api, {"code": "sso", "name": "Single sign-on"})  # a feature without privileges: on/off
    plan = make_plan(code="pro")
    subscription = make_subscription(plan=plan, external_id="sub_pro")
    other = make_subscription(plan=plan, external_id="sub_other")

    created = api.post(
        "/api/v1/plans/pro/entitlements",
        {"entitlements": {"seats": {"max": 10, "allow_admin_user": True, "tier": "std"}, "sso": {}}},
    )
    assert created.status_code == 200, created.content
    assert created.json()["entitlements"] == [
        {
            "code": "seats",
            "name": "Number of seats",
            "description": SEATS["description"],
            "privileges": [
                {"code": "max", "name": "Maximum seats", "value_type": "integer", "value": 10, "config": {}},
                {
                    "code": "allow_admin_user",
                    "name": "Allow admin user",
                    "value_type": "boolean",
                    "value": True,
                    "config": {},
                },
                {
                    "code": "tier",
                    "name": "Support tier",
                    "value_type": "select",
                    "value": "std",
                    "config": {"select_options": ["std", "vip"]},
                },
            ],
        },
        {"code": "sso", "name": "Single sign-on", "description": None, "privileges": []},
    ]

    # The subscription raises its seat limit to 25 and goes VIP; the other keeps the plan's.
    patched = api.patch(
        "/api/v1/subscriptions/sub_pro/entitlements", {"entitlements": {"seats": {"max": 25, "tier": "vip"}}}
    )
    assert patched.status_code == 200, patched.content
    seats = patched.json()["entitlements"][0]
    assert seats["overrides"] == {"max": 25, "tier": "vip"}
    assert [(p["code"], p["value"], p["plan_value"], p["override_value"]) for p in seats["privileges"]] == [
        ("max", 25, 10, 25),
        ("allow_admin_user", True, True, None),
        ("tier", "vip", "std", "vip"),
    ]
    theirs = api.get("/api/v1/subscriptions/sub_other/entitlements").json()["entitlements"][0]
    assert theirs["overrides"] == {}
    assert [p["value"] for p in theirs["privileges"]] == [10, True, "std"]

    # Setting the plan's own values back drops the override.
    back = api.patch(
        "/api/v1/subscriptions/sub_pro/entitlements",
        {"entitlements": {"seats": {"max": 10, "allow_admin_user": True, "tier": "std"}}},
    )
    assert back.json()["entitlements"][0]["overrides"] == {}
    assert not Entitlement.objects.filter(subscription=subscription).exists()

    # The subscription does without SSO and without the admin-user privilege; the plan still grants both.
    without_sso = api.delete("/api/v1/subscriptions/sub_pro/entitlements/sso")
    assert [e["code"] for e in without_sso.json()["entitlements"]] == ["seats"]
    without_admin = api.delete("/api/v1/subscriptions/sub_pro/entitlements/seats/privileges/allow_admin_user")
    assert [p["code"] for p in without_admin.json()["entitlements"][0]["privileges"]] == ["max", "tier"]
    assert EntitlementRemoval.objects.filter(subscription=subscription).count() == 2
    assert [e["code"] for e in api.get("/api/v1/subscriptions/sub_other/entitlements").json()["entitlements"]] == [
        "seats",
        "sso",
    ]
    del other

    # Granting SSO again to the subscription lifts its removal.
    again = api.patch("/api/v1/subscriptions/sub_pro/entitlements", {"entitlements": {"sso": {}}})
    assert [e["code"] for e in again.json()["entitlements"]] == ["seats", "sso"]


def test_plan_entitlement_routes_and_refusals(api):
    create_feature(api)
    make_plan(code="pro")
    assert api.post("/api/v1/plans/pro/entitlements", {"entitlements": {"seats": {"max": 5}}}).status_code == 200

    one = api.get("/api/v1/plans/pro/entitlements/seats")
    assert one.json()["entitlement"]["privileges"][0]["value"] == 5
    assert api.patch("/api/v1/plans/pro/entitlements", {"entitlements": {"seats": {"tier": "vip"}}}).status_code == 200
    values = [p["value"] for p in api.get("/api/v1/plans/pro/entitlements/seats").json()["entitlement"]["privileges"]]
    assert values == [5, "vip"]  # PATCH keeps max
    assert api.post("/api/v1/plans/pro/entitlements", {"entitlements": {"seats": {"tier": "std"}}}).status_code == 200
    values = [p["value"] for p in api.get("/api/v1/plans/pro/entitlements/seats").json()["entitlement"]["privileges"]]
    assert values == ["std"]  # POST replaces

    refused = api.patch("/api/v1/plans/pro/entitlements", {"entitlements": {"seats": {"max": "ten"}}})
    assert refused.status_code == 422
    assert refused.json()["error_details"] == {"max_privilege_value": ["value_is_invalid"]}
    refused = api.patch("/api/v1/plans/pro/entitlements", {"entitlements": {"seats": {"tier": "gold"}}})
    assert refused.json()["error_details"] == {"tier_privilege_value": ["value_not_in_select_options"]}
    missing = api.patch("/api/v1/plans/pro/entitlements", {"entitlements": {"nope": {}}})
    assert missing.status_code == 404 and missing.json()["code"] == "feature_not_found"
    missing = api.patch("/api/v1/plans/pro/entitlements", {"entitlements": {"seats": {"nope": 1}}})
    assert missing.status_code == 404 and missing.json()["code"] == "privilege_not_found"
    assert api.get("/api/v1/plans/nope/entitlements").json()["code"] == "plan_not_found"

    removed = api.delete("/api/v1/plans/pro/entitlements/seats/privileges/tier")
    assert removed.json()["entitlement"]["privileges"] == []
    deleted = api.delete("/api/v1/plans/pro/entitlements/seats")
    assert deleted.status_code == 200 and deleted.json()["entitlement"]["code"] == "seats"
    assert api.get("/api/v1/plans/pro/entitlements").json() == {"entitlements": []}
    assert api.get("/api/v1/plans/pro/entitlements/seats").json()["code"] == "entitlement_not_found"
