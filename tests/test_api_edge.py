"""The API's edge (billing_project.api: middleware, parser, pagination, params, errors): every
input a fuzzer or a careless client sends gets a JSON 4xx (or 503), never a 500 or an HTML page."""

from __future__ import annotations

import json

import pytest
from django.db import OperationalError, connection
from django.test import Client

from billing_project.api.middleware import ApiEdgeMiddleware
from customers.models import Customer
from tests.factories.customers import make_customer
from tests.factories.plans import make_plan

pytestmark = pytest.mark.django_db

LISTS = ["customers", "plans", "taxes", "add_ons", "coupons", "subscriptions", "invoices", "fees", "payments", "events"]


@pytest.mark.parametrize("collection", LISTS)
def test_a_huge_page_is_an_empty_page_not_an_offset_overflow(api, collection):
    make_customer()
    for params in ({"page": "4879149629354"}, {"page": str(2**70), "per_page": str(2**70)}):
        response = api.get(f"/api/v1/{collection}", params)
        assert response.status_code == 200, (params, response.content[:200])
        assert response.json()[collection] == []
    # Too many digits for int() is not a page number at all: the first page, as for "abc".
    assert api.get(f"/api/v1/{collection}", {"page": "9" * 5000}).status_code == 200


def test_a_nul_byte_in_a_query_parameter_is_a_422_naming_it(api):
    response = api.get("/api/v1/customers?external_id=a%00b&per_page=2")

    assert response.status_code == 422
    assert response.json() == {
        "status": 422,
        "error": "Unprocessable Entity",
        "code": "validation_errors",
        "error_details": {"external_id": ["value_is_invalid"]},
    }


@pytest.mark.parametrize("path", ["customers/a%00b", "plans/%00", "customers/x%00/current_usage", "nowhere%00"])
def test_a_nul_byte_in_the_path_is_a_json_404(api, path):
    response = api.get(f"/api/v1/{path}")

    assert response.status_code == 404
    assert response.json()["code"] == "resource_not_found"


@pytest.mark.parametrize("bad", ["\\u0000", "\\ud800", "a\\udfffb"])
def test_nul_bytes_and_lone_surrogates_in_a_body_are_refused_naming_the_field(api, bad):
    body = '{"customer": {"external_id": "c1", "name": "A' + bad + '"}}'

    response = api.post("/api/v1/customers", body.encode(), content_type="application/json")

    assert response.status_code == 422
    assert response.json()["error_details"] == {"name": ["value_is_invalid"]}
    assert not Customer.objects.exists()


def test_a_surrogate_pair_is_text_like_any_other(api):
    body = '{"customer": {"external_id": "c1", "name": "A \\ud83d\\ude00"}}'

    response = api.post("/api/v1/customers", body.encode(), content_type="application/json")

    assert response.status_code == 200
    assert Customer.objects.get().name == "A \N{GRINNING FACE}"


def test_json_nested_2000_levels_is_a_400(api):
    body = b'{"customer": ' + b"[" * 2500 + b"]" * 2500 + b"}"

    response = api.post("/api/v1/customers", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["status"] == 400


@pytest.mark.parametrize("offset", ["+16:00", "-23:59", "+99:00"])
def test_a_utc_offset_no_timezone_uses_is_an_invalid_date(api, offset):
    response = api.get("/api/v1/events", {"timestamp_from": f"2026-01-01T00:00:00{offset}"})

    assert response.status_code == 422
    assert response.json()["error_details"] == {"timestamp_from": ["invalid_date"]}


def test_the_widest_real_offsets_are_accepted(api):
    for offset in ("+15:59", "-15:59", "+14:00"):
        assert api.get("/api/v1/events", {"timestamp_to": f"2026-01-01T00:00:00{offset}"}).status_code == 200


def test_an_oversized_body_is_a_json_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = api.post("/api/v1/customers", {"customer": {"external_id": "c1", "name": "x" * 2000}})

    assert response.status_code == 413
    assert response.json() == {"status": 413, "error": "Payload Too Large", "code": "payload_too_large"}


def test_a_database_outage_is_a_json_503_with_retry_after(api, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", unreachable)

    response = api.get("/api/v1/customers")

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json() == {"status": 503, "error": "Service Unavailable", "code": "service_unavailable"}


def test_a_database_outage_outside_drf_views_is_a_json_503_too(rf):
    middleware = ApiEdgeMiddleware(lambda request: None)

    response = middleware.process_exception(rf.get("/api/v1/documents/x"), OperationalError("connection refused"))

    assert response.status_code == 503
    assert json.loads(response.content)["code"] == "service_unavailable"
    assert middleware.process_exception(rf.get("/admin/"), OperationalError("connection refused")) is None


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
def test_any_method_on_an_unknown_api_path_is_lagos_json_404_even_with_csrf_checks(api_key, method):
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {api_key.raw}")

    response = getattr(client, method)("/api/v1/no_such_thing/1", data={}, content_type="application/json")

    assert response.status_code == 404
    assert response.json() == {"status": 404, "error": "Not Found", "code": "resource_not_found"}


def test_a_wrong_method_on_a_known_path_is_a_json_405(api):
    response = api.delete("/api/v1/events/batch")

    assert response.status_code == 405
    assert response.json() == {"status": 405, "error": "Method Not Allowed", "code": "method_not_allowed"}


def test_patch_updates_like_put_where_lago_routes_updates(api):
    make_plan(code="startup", name="Startup")

    response = api.patch("/api/v1/plans/startup", {"plan": {"name": "Renamed"}})

    assert response.status_code == 200, response.json()
    assert response.json()["plan"]["name"] == "Renamed"


@pytest.mark.parametrize(
    ("path", "root", "body"),
    [
        ("customers", "customer", {"external_id": "a/b", "name": "A"}),
        ("plans", "plan", {"code": "a/b", "name": "P", "interval": "monthly", "amount_currency": "EUR"}),
        ("add_ons", "add_on", {"code": "a/b", "name": "A", "amount_cents": 100, "amount_currency": "USD"}),
        ("taxes", "tax", {"code": "a/b", "name": "VAT", "rate": "20"}),
        ("billable_metrics", "billable_metric", {"code": "a/b", "name": "M", "aggregation_type": "count_agg"}),
    ],
)
def test_an_id_holding_a_slash_is_refused_since_no_path_could_reach_it(api, path, root, body):
    response = api.post(f"/api/v1/{path}", {root: body})

    assert response.status_code == 422, response.json()
    key = "external_id" if root == "customer" else "code"
    assert response.json()["error_details"][key] == ["value_is_invalid"]


def test_a_subscription_external_id_holding_a_slash_is_refused(api):
    make_customer(external_id="c1")
    make_plan(code="startup")

    body = {"external_customer_id": "c1", "plan_code": "startup", "external_id": "s/1"}

    response = api.post("/api/v1/subscriptions", {"subscription": body})

    assert response.status_code == 422
    assert response.json()["error_details"]["external_id"] == ["value_is_invalid"]


def test_the_schema_offers_patch_wherever_put_is(anon_api):
    paths = anon_api.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()["paths"]

    assert paths["/api/v1/plans/{code}"]["patch"]["operationId"] == "updatePlanPatch"
    put_only = {
        "/api/v1/organizations",
        "/api/v1/invoices/{invoice_id}/refresh",
        "/api/v1/invoices/{invoice_id}/finalize",
        "/api/v1/credit_notes/{credit_note_id}/void",
        "/api/v1/credit_notes/{credit_note_id}/finalize",  # Tollgate's, in the style of invoices' finalize
        "/api/v1/customers/{external_id}/payment_methods/{payment_method_id}/set_as_default",
    }
    assert all(
        "patch" in operations for path, operations in paths.items() if "put" in operations and path not in put_only
    )
    assert not any("patch" in paths[path] for path in put_only)


@pytest.mark.parametrize("path", ["organizations", "invoices/x/refresh", "invoices/x/finalize", "credit_notes/x/void"])
def test_patch_is_a_405_where_lago_routes_put_alone(api, path):
    # Lago's config/routes.rb: `put "/organizations"`, `put :refresh`, `put :finalize`, `put :void`.
    response = api.patch(f"/api/v1/{path}", {})

    assert response.status_code == 405
    assert response.json() == {"status": 405, "error": "Method Not Allowed", "code": "method_not_allowed"}
