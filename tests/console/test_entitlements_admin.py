"""Features and entitlements in the console, through the test client: a Finance Manager adds a
feature with its privileges as rows, changes and removes them, and deletes the feature, each save
through plans.entitlements.services (refused in the API's terms, nothing half-written) with the
admin's LogEntry as audit row; a Finance Viewer sees and is refused on POST; the plan and
subscription pages show what they grant and override."""

from __future__ import annotations

from importlib import import_module
from typing import Any

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.models import Group, User

from plans.entitlements import services as entitlements
from plans.entitlements.models import Feature, Privilege
from tests.factories.customers import make_customer
from tests.factories.plans import make_plan, make_subscription

pytestmark = pytest.mark.django_db

ADD = "/admin/plans/feature/add/"


@pytest.fixture(autouse=True)
def roles(db) -> None:
    from django.apps import apps

    if not Group.objects.filter(name="Finance Manager").exists():
        import_module("payments.migrations.0005_finance_console_groups").create_groups(apps, None)


def _login(client, username: str, group: str) -> Any:
    user = User.objects.create_user(username, f"{username}@tollgate.test", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return client


def _rows(*rows: dict[str, str], initial: int = 0) -> dict[str, str]:
    data = {
        "privileges-TOTAL_FORMS": str(len(rows)),
        "privileges-INITIAL_FORMS": str(initial),
        "privileges-MIN_NUM_FORMS": "0",
        "privileges-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        data.update({f"privileges-{i}-{key}": value for key, value in row.items()})
    return data


def _errors(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_a_manager_edits_a_feature_and_its_privileges_through_the_service(client):
    manager = _login(client, "manager", "Finance Manager")
    answer = manager.post(
        ADD,
        {
            "code": "seats",
            "name": "Seats",
            "description": "",
            **_rows(
                {"code": "max", "name": "Maximum", "value_type": "integer", "select_options": ""},
                {"code": "tier", "name": "", "value_type": "select", "select_options": "basic, pro"},
                {"code": "", "name": "", "value_type": "string", "select_options": ""},  # the empty extra row
            ),
        },
    )
    assert answer.status_code == 302, _errors(answer)
    feature = Feature.objects.get(code="seats")
    assert [(p.code, p.name, p.value_type, p.config) for p in feature.privileges.all()] == [
        ("max", "Maximum", "integer", {}),
        ("tier", "", "select", {"select_options": ["basic", "pro"]}),
    ]
    added = LogEntry.objects.get(object_id=str(feature.pk), action_flag=ADDITION)
    assert added.user.username == "manager" and "Added privilege" in added.get_change_message()

    plan = make_plan(code="startup")
    entitlements.plan_entitlements_update(plan=plan, entitlements={"seats": {"max": 5, "tier": "pro"}}, partial=False)
    page = manager.get(f"/admin/plans/feature/{feature.pk}/change/").content.decode()
    assert "Granted by plans" in page and "startup" in page

    by_code = {p.code: p for p in feature.privileges.all()}
    answer = manager.post(
        f"/admin/plans/feature/{feature.pk}/change/",
        {
            "name": "Seats included",
            "description": "Per workspace",
            **_rows(
                {"id": str(by_code["max"].pk), "feature": str(feature.pk), "name": "Max seats", "select_options": ""},
                {
                    "id": str(by_code["tier"].pk),
                    "feature": str(feature.pk),
                    "name": "",
                    "select_options": "basic, pro",
                    "DELETE": "on",
                },
                {
                    "code": "sso",
                    "name": "SSO",
                    "value_type": "boolean",
                    "select_options": "",
                    "feature": str(feature.pk),
                },
                initial=2,
            ),
        },
    )
    assert answer.status_code == 302, _errors(answer)
    feature.refresh_from_db()
    assert (feature.name, feature.description) == ("Seats included", "Per workspace")
    assert [(p.code, p.name, p.value_type) for p in feature.privileges.all()] == [
        ("max", "Max seats", "integer"),
        ("sso", "SSO", "boolean"),
    ]
    # The plan's grant of the removed privilege went with it (cascade, as the API's delete).
    grant = entitlements.serialize_plan_entitlement(entitlements.plan_entitlement(plan=plan, feature_code="seats"))
    assert [(p["code"], p["value"]) for p in grant["privileges"]] == [("max", 5)]
    changed = LogEntry.objects.get(object_id=str(feature.pk), action_flag=CHANGE).get_change_message()
    assert "Added privilege" in changed and "Deleted privilege" in changed and "Changed Name and Description" in changed

    answer = manager.post(f"/admin/plans/feature/{feature.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    assert not Feature.objects.filter(code="seats").exists() and not Privilege.objects.exists()
    assert LogEntry.objects.filter(object_id=str(feature.pk), action_flag=DELETION).count() == 1


def test_refusals_are_the_services_and_write_nothing(client):
    manager = _login(client, "manager", "Finance Manager")
    entitlements.feature_create(code="seats")
    # A select without options (Lago's Privilege#config_valid?), and two rows with one code.
    cases = [
        ("api", [{"code": "tier", "name": "", "value_type": "select", "select_options": ""}], "lists its options"),
        (
            "api",
            [
                {"code": "max", "name": "", "value_type": "integer", "select_options": ""},
                {"code": "max", "name": "", "value_type": "string", "select_options": ""},
            ],
            "Two privileges use this code",
        ),
        ("seats", [], "A feature already uses this code"),
        ("", [], "This field is required"),
    ]
    for code, rows, message in cases:
        page = _errors(manager.post(ADD, {"code": code, "name": "", "description": "", **_rows(*rows)}))
        assert message in page, (code, message)
    assert list(Feature.objects.values_list("code", flat=True)) == ["seats"]
    assert not Privilege.objects.exists() and not LogEntry.objects.exists()


def test_a_viewer_sees_features_and_is_refused_changes(client):
    feature = entitlements.feature_create(code="seats", name="Seats")
    viewer = _login(client, "viewer", "Finance Viewer")
    assert viewer.get("/admin/plans/feature/").status_code == 200
    assert viewer.get(f"/admin/plans/feature/{feature.pk}/change/").status_code == 200
    assert viewer.get(ADD).status_code == 403
    assert viewer.post(ADD, {"code": "api", **_rows()}).status_code == 403
    refused = viewer.post(f"/admin/plans/feature/{feature.pk}/change/", {"name": "Hacked", **_rows()})
    assert refused.status_code == 403
    assert viewer.post(f"/admin/plans/feature/{feature.pk}/delete/", {"post": "yes"}).status_code == 403
    feature.refresh_from_db()
    assert feature.name == "Seats" and not LogEntry.objects.exists()
    # Support has no feature permission at all.
    client.logout()
    support = _login(client, "support", "Support")
    assert support.get("/admin/plans/feature/").status_code == 403


def test_plan_and_subscription_pages_show_grants_and_overrides(client):
    manager = _login(client, "manager", "Finance Manager")
    entitlements.feature_create(
        code="seats", privileges=[{"code": "max", "value_type": "integer"}, {"code": "sso", "value_type": "boolean"}]
    )
    entitlements.feature_create(code="audit_log")
    plan = make_plan(code="startup")
    entitlements.plan_entitlements_update(
        plan=plan, entitlements={"seats": {"max": 5, "sso": False}, "audit_log": {}}, partial=False
    )
    sub = make_subscription(plan=plan, customer=make_customer(external_id="acme"), external_id="sub_acme")
    entitlements.subscription_entitlements_update(subscription=sub, entitlements={"seats": {"max": 12}})
    entitlements.subscription_feature_remove(subscription=sub, feature_code="audit_log")

    plan_page = manager.get(f"/admin/plans/plan/{plan.pk}/change/").content.decode()
    assert '<tr class="entitlement-row"><td>seats</td><td>max = 5, sso = no</td></tr>' in plan_page
    assert '<tr class="entitlement-row"><td>audit_log</td><td>on</td></tr>' in plan_page
    sub_page = manager.get(f"/admin/plans/subscription/{sub.pk}/change/").content.decode()
    # max: 12 (its own), the plan's 5; sso: the plan's no; audit_log removed for this subscription.
    assert "<td>seats</td><td>max</td><td>12</td><td>5</td><td>12</td>" in sub_page
    assert "<td>seats</td><td>sso</td><td>no</td><td>no</td><td>-</td>" in sub_page
    assert "audit_log" not in sub_page
