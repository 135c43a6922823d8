"""The customers demo step (idempotent, secrets printed once) and the OpenAPI schema."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from billing_project.demo import DemoSummary
from customers import demo
from customers.models import ApiKey, Customer, Organization, hash_api_key

pytestmark = pytest.mark.django_db


def test_demo_loads_once_and_gives_secrets_once():
    first, again = io.StringIO(), io.StringIO()
    first_summary, again_summary = DemoSummary(), DemoSummary()

    demo.load(stdout=first, summary=first_summary)
    demo.load(stdout=again, summary=again_summary)

    organization = Organization.current()
    assert organization.legal_name == "Tollgate Demo Inc."
    customers = {c.external_id: c for c in Customer.live.all()}
    assert set(customers) == {"acme", "tanaka", "globex"}
    # What the plans demo expects of the customers it subscribes.
    from plans.demo import CUSTOMERS as PLANS_DEMO_CUSTOMERS

    for external_id, fields in PLANS_DEMO_CUSTOMERS.items():
        for field, value in fields.items():
            assert getattr(customers[external_id], field) == value, (external_id, field)
    assert customers["tanaka"].applicable_timezone() == "Asia/Tokyo"
    assert all(c.sequential_id for c in customers.values())

    password, raw = first_summary.admin_password, first_summary.api_key
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    assert ApiKey.objects.get(name="demo").key_hash == hash_api_key(raw)
    # The step's own lines never carry the secrets: only the closing block does, once.
    assert password not in first.getvalue() and raw not in first.getvalue()
    assert password in first_summary.closing_block() and raw in first_summary.closing_block()
    assert (again_summary.admin_password, again_summary.api_key) == ("", "")
    assert password not in again_summary.closing_block() and raw not in again_summary.closing_block()
    assert "manage.py changepassword admin" in again_summary.closing_block()
    assert "0 demo customer(s) created" in again.getvalue()
    assert Customer.objects.count() == 3 and ApiKey.objects.count() == 1


def test_demo_keeps_what_someone_changed():
    demo.load(stdout=io.StringIO())
    Customer.live.filter(external_id="acme").update(name="Acme (renamed)")
    Organization.objects.update(legal_name="Changed Ltd")

    demo.load(stdout=io.StringIO())

    assert Customer.live.get(external_id="acme").name == "Acme (renamed)"
    assert Organization.current().legal_name == "Changed Ltd"


def test_openapi_schema_builds_without_warnings_and_validates(tmp_path):
    """`manage.py spectacular --fail-on-warn --validate` for the whole project."""
    target = tmp_path / "schema.yml"

    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(target))

    schema = target.read_text()
    assert "/api/v1/customers/{external_id}" in schema
    assert "/api/v1/organizations" in schema
    assert "scheme: bearer" in schema


def test_schema_and_docs_are_served(client):
    assert client.get("/api/v1/schema/").status_code == 200
    assert client.get("/api/v1/docs/").status_code == 200
