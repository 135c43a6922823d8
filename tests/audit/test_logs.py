"""Activity logs and API logs through lago-python-client 1.55.0 against a live Tollgate, as
Lago's app/serializers/v1/activity_log_serializer.rb and api_log_serializer.rb shape them; the
API logs' redaction, the events setting and the retention prune."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.customer import Customer
from lago_python_client.models.webhook_endpoint import WebhookEndpoint

from audit import services
from audit.models import ApiLog
from audit.redact import REDACTED, redact
from tests.factories.customers import make_api_key
from tests.factories.plans import make_plan

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.api_logs]


@pytest.fixture
def key():
    return make_api_key(name="backend").raw


@pytest.fixture
def lago(live_server, key) -> Client:
    return Client(api_key=key, api_url=live_server.url)


def test_activity_logs_name_the_api_key_and_the_fields_changed(lago):
    lago.customers.create(Customer(external_id="acme", name="Acme"))
    lago.customers.create(Customer(external_id="acme", name="Acme Corp"))  # the upsert updates it
    make_plan(code="startup")  # a change made by no request: the system's

    logs = lago.activity_logs.find_all()["activity_logs"]

    kinds = [(log.activity_type, log.activity_source) for log in logs]
    assert kinds[:2] == [("plan.created", "system"), ("customer.updated", "api")]
    assert ("customer.created", "api") in kinds
    updated = logs[1]
    assert updated.activity_object_changes == {"name": ["Acme", "Acme Corp"]}
    assert (updated.resource_type, updated.external_customer_id) == ("Customer", "acme")
    assert updated.activity_object["name"] == "Acme Corp"
    assert lago.activity_logs.find(updated.activity_id).activity_type == "customer.updated"

    only = lago.activity_logs.find_all(
        {"activity_types[]": "customer.updated", "external_customer_id": "acme", "activity_sources[]": "api"}
    )
    assert [log.activity_id for log in only["activity_logs"]] == [updated.activity_id]
    assert only["meta"]["total_count"] == 1
    assert lago.activity_logs.find_all({"resource_types[]": "Plan"})["meta"]["total_count"] == 1

    with pytest.raises(LagoApiError) as missing:
        lago.activity_logs.find("customer-999999")
    assert (missing.value.status_code, missing.value.response["code"]) == (404, "activity_log_not_found")


def test_an_admin_change_is_logged_with_the_users_email(lago, admin_user):
    admin_user.email = "finance@tollgate.test"
    admin_user.save()
    lago.customers.create(Customer(external_id="acme", name="Acme"))
    from customers.models import Customer as CustomerModel

    customer = CustomerModel.live.get(external_id="acme")
    customer.name = "Acme Admin"
    customer._history_user = admin_user  # as the admin's save records it (HistoryRequestMiddleware)
    customer.save()

    front = lago.activity_logs.find_all({"activity_sources[]": "front"})["activity_logs"]
    assert [(log.activity_type, log.user_email) for log in front] == [("customer.updated", "finance@tollgate.test")]
    assert front[0].activity_object_changes == {"name": ["Acme", "Acme Admin"]}


def test_api_logs_keep_each_request_with_writes_bodies_and_no_secrets(live_server, key, lago, settings):
    settings.TOLLGATE_WEBHOOKS_ALLOW_PRIVATE_URLS = True
    lago.customers.create(Customer(external_id="acme", name="Acme"))
    endpoint = lago.webhook_endpoints.create(WebhookEndpoint(webhook_url="http://127.0.0.1:9/hooks"))
    lago.customers.find_all({"per_page": 5})
    with pytest.raises(LagoApiError):
        lago.customers.find("nobody")

    logs = lago.api_logs.find_all()["api_logs"]

    assert [(log.http_method, log.request_path, log.http_status) for log in logs] == [
        ("get", "/api/v1/customers/nobody", 404),
        ("get", "/api/v1/customers", 200),
        ("post", "/api/v1/webhook_endpoints", 200),
        ("post", "/api/v1/customers", 200),
    ]
    created = logs[3]
    assert created.request_body == {"customer": {"external_id": "acme", "name": "Acme"}}
    assert created.request_response["customer"]["external_id"] == "acme"
    assert (created.api_version, created.request_origin) == ("v1", live_server.url)
    assert created.client.startswith("lago-python") or created.client  # the client's User-Agent
    assert logs[1].request_body == {"per_page": "5"} and logs[1].request_response is None
    # The signing secret the endpoint's creation answered once is not in its log.
    assert endpoint.lago_id
    assert logs[2].request_response["webhook_endpoint"]["signing_secret"] == REDACTED
    stored = ApiLog.objects.get(request_id=created.request_id)
    assert (stored.api_key_name, stored.api_key.name) == ("backend", "backend")
    assert lago.api_logs.find(created.request_id).request_path == "/api/v1/customers"

    failed = lago.api_logs.find_all({"http_statuses[]": "failed"})["api_logs"]
    assert [log.http_status for log in failed] == [404]
    posts = lago.api_logs.find_all({"http_methods[]": "post", "request_paths[]": "/api/v1/customers"})
    assert posts["meta"]["total_count"] == 1
    # Reading the logs is not logged.
    assert not ApiLog.objects.filter(request_path__startswith="/api/v1/api_logs").exists()
    with pytest.raises(LagoApiError) as missing:
        lago.api_logs.find("00000000-0000-0000-0000-000000000000")
    assert missing.value.response["code"] == "api_log_not_found"


def test_event_ingestion_is_not_logged_unless_the_setting_says_so(live_server, key, settings):
    from tests.factories.metrics import make_metric

    make_metric(code="api_calls")
    event = {"event": {"transaction_id": "t1", "external_subscription_id": "s1", "code": "api_calls"}}
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.post(f"{live_server.url}/api/v1/events", json=event, headers=headers).status_code == 200
    assert not ApiLog.objects.exists()

    settings.TOLLGATE_API_LOGS_EVENTS = True
    event["event"]["transaction_id"] = "t2"
    assert httpx.post(f"{live_server.url}/api/v1/events", json=event, headers=headers).status_code == 200
    assert list(ApiLog.objects.values_list("request_path", "http_status")) == [("/api/v1/events", 200)]


def test_prune_deletes_what_is_past_the_retention_in_batches(settings):
    settings.TOLLGATE_API_LOG_RETENTION_DAYS = 90
    now = timezone.now()
    for days in (200, 120, 91, 89, 1):
        ApiLog.objects.create(
            http_method="GET", http_status=200, request_path=f"/{days}", logged_at=now - timedelta(days=days)
        )

    # Batches of two: 2 + 1 rows, three statements at most, the recent two kept.
    assert services.api_logs_prune(now=now, batch=2) == 3
    assert sorted(ApiLog.objects.values_list("request_path", flat=True)) == ["/1", "/89"]
    assert services.api_logs_prune(now=now, batch=2) == 0
    # A bounded run: one batch of one row per run.
    ApiLog.objects.create(http_method="GET", http_status=200, request_path="/old1", logged_at=now - timedelta(days=100))
    ApiLog.objects.create(http_method="GET", http_status=200, request_path="/old2", logged_at=now - timedelta(days=100))
    assert services.api_logs_prune(now=now, batch=1, max_batches=1) == 1
    assert services.api_logs_prune(now=now, batch=1, max_batches=1) == 1


def test_redaction_reaches_nested_secrets_and_keeps_the_rest():
    body = {"a": {"hmac_key": "k", "Password": "p", "list": [{"api_key": "x", "name": "n"}]}, "token": None}

    assert redact(body) == {
        "a": {"hmac_key": REDACTED, "Password": REDACTED, "list": [{"api_key": REDACTED, "name": "n"}]},
        "token": None,
    }


def test_redaction_drops_what_postgresql_cannot_store():
    # A body the API refused (NUL, a lone surrogate) is still logged, without those characters.
    assert redact({"na\x00me": "a\x00b", "city": "\ud800x"}) == {"name": "ab", "city": "?x"}


def test_an_api_log_costs_a_request_one_insert(key, settings):
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(headers={"authorization": f"Bearer {key}"})
    client.get("/api/v1/customers")  # the key's last_used_at is written once a minute: not counted below

    def queries() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/customers").status_code == 200
        return [query["sql"] for query in captured.captured_queries]

    settings.TOLLGATE_API_LOGS = False
    unlogged = queries()
    settings.TOLLGATE_API_LOGS = True
    logged = queries()

    # Autocommit (no transaction open): the log is one statement, no BEGIN/COMMIT or savepoint:
    # its INSERT, and synchronous_commit off for that statement's own transaction only.
    assert len(logged) == len(unlogged) + 1
    assert logged[-1].startswith('WITH i0 AS (INSERT INTO "audit_apilog"')
    assert "set_config('synchronous_commit', 'off', true)" in logged[-1]
    assert ApiLog.objects.filter(request_path="/api/v1/customers").count() == 2
    # The setting did not outlive the log's transaction: the connection's next commits wait for
    # their flush as before.
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)
