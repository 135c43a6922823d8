"""Shared fixtures: an authenticated API client, the organization, service markers."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.conf import settings
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

hypothesis_settings.register_profile(
    "default", deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.register_profile(
    "ci", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "default")

IN_CI = bool(os.environ.get("CI"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`@pytest.mark.postgres` tests skip on SQLite with a reason, except in CI where they must run."""
    if settings.IS_POSTGRESQL:
        return
    if IN_CI:
        raise pytest.UsageError("CI must run on PostgreSQL: set DATABASE_URL (see .ci/run).")
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL=postgres://...)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def organization(db):
    from customers.models import Organization

    return Organization.current()


@pytest.fixture
def api_key(db):
    """A fresh API key; `.raw` holds the plain key (shown once in real life)."""
    from tests.factories.customers import make_api_key

    return make_api_key()


@pytest.fixture
def api(api_key) -> APIClient:
    """An APIClient that sends `Authorization: Bearer <key>` and JSON bodies."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.raw}")
    client.default_format = "json"
    return client


@pytest.fixture
def anon_api() -> APIClient:
    client = APIClient()
    client.default_format = "json"
    return client


@pytest.fixture(autouse=True)
def _api_logs_only_where_asked(request, settings):
    """API logs (audit.middleware) add one insert to every API request: off, except in tests
    marked `api_logs`, so that the query-count tests count what the views do. The insert's cost
    is measured by bench_api_logs; the logs themselves are tested in tests/audit."""
    settings.TOLLGATE_API_LOGS = request.node.get_closest_marker("api_logs") is not None


@pytest.fixture(autouse=True)
def _fresh_content_type_cache():
    """A transactional test's flush recreates the content types under new ids while the process
    keeps caching the old ones; an admin action in a later test (LogEntry.content_type) would then
    point at a row that no longer exists. Start every test with an empty cache."""
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()


@pytest.fixture
def flows(django_capture_on_commit_callbacks):
    """Runs a flow as a request or a task would: its on-commit callbacks (deliveries, e-mails,
    webhooks' tasks) executed when its transaction commits."""

    def run(call: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    return run


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on loopback (aiosmtpd); Django sends to it through Tollgate's SMTP
    backend, as production does with EMAIL_URL=smtp://..."""
    from tests.smtp_server import SmtpServer

    server = SmtpServer()
    server.start()
    settings.EMAIL_BACKEND = "billing_project.mail.RecordingSMTPBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.DEFAULT_FROM_EMAIL = "Tollgate Billing <billing@tollgate.test>"
    try:
        yield server
    finally:
        server.stop()
