"""API keys: Bearer authentication, 401 shapes, revocation, last_used_at, the create command."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from customers import services
from customers.authentication import LAST_USED_RESOLUTION
from customers.models import ApiKey, hash_api_key

pytestmark = pytest.mark.django_db

UNAUTHORIZED = {"status": 401, "error": "Unauthorized"}


def client_with(header: str | None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


def test_a_created_key_authenticates_and_only_its_hash_is_stored(organization):
    api_key, raw = services.api_key_create(name="backend")

    response = client_with(f"Bearer {raw}").get("/api/v1/customers")

    assert response.status_code == 200
    assert raw.startswith("tg_") and len(raw) >= 3 + 43  # 32 random bytes, URL-safe base64
    assert api_key.key_hash == hash_api_key(raw) and raw not in api_key.key_hash
    assert api_key.display_prefix == raw[:10]
    assert not ApiKey.objects.filter(key_hash=raw).exists()


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer    ", "Token abc", "Basic dXNlcjpwYXNz", "Bearer tg_wrong"],
)
def test_missing_or_wrong_key_is_401(organization, header):
    response = client_with(header).get("/api/v1/customers")

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response["WWW-Authenticate"] == "Bearer"


def test_prefix_of_a_key_is_not_a_key(organization):
    _, raw = services.api_key_create(name="backend")

    assert client_with(f"Bearer {raw[:10]}").get("/api/v1/customers").status_code == 401
    assert client_with(f"Bearer {raw}x").get("/api/v1/customers").status_code == 401


def test_revoked_key_is_401_from_the_next_request(organization):
    api_key, raw = services.api_key_create(name="backend")
    client = client_with(f"Bearer {raw}")
    assert client.get("/api/v1/customers").status_code == 200

    services.api_key_revoke(api_key=api_key)
    first_revocation = api_key.revoked_at
    services.api_key_revoke(api_key=api_key)

    response = client.get("/api/v1/customers")
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert api_key.revoked_at == first_revocation is not None
    assert not api_key.is_active


def test_last_used_at_is_written_at_most_once_a_minute(organization):
    api_key, raw = services.api_key_create(name="backend")
    client = client_with(f"Bearer {raw}")
    assert api_key.last_used_at is None

    client.get("/api/v1/customers")
    api_key.refresh_from_db()
    first = api_key.last_used_at
    client.get("/api/v1/customers")
    api_key.refresh_from_db()
    assert first is not None and api_key.last_used_at == first

    # Once the resolution has passed, the next request writes it again.
    stale = timezone.now() - LAST_USED_RESOLUTION - timedelta(seconds=1)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=stale)
    client.get("/api/v1/customers")
    api_key.refresh_from_db()
    assert api_key.last_used_at > stale


def test_a_request_with_a_valid_key_costs_one_query_for_the_key(organization, django_assert_max_num_queries):
    _, raw = services.api_key_create(name="backend")
    client = client_with(f"Bearer {raw}")
    client.get("/api/v1/customers")  # writes last_used_at

    # key lookup, organization, count, page: no writes once last_used_at is fresh
    with django_assert_max_num_queries(4):
        assert client.get("/api/v1/customers").status_code == 200


def test_create_api_key_command_prints_the_key_once():
    out, err = io.StringIO(), io.StringIO()

    call_command("create_api_key", "--name", "ci", stdout=out, stderr=err)

    raw = out.getvalue().strip()
    api_key = ApiKey.objects.get(name="ci")
    assert api_key.key_hash == hash_api_key(raw)
    assert "shown only once" in err.getvalue() and raw not in err.getvalue()
    assert client_with(f"Bearer {raw}").get("/api/v1/customers").status_code == 200


def test_create_api_key_command_refuses_an_empty_name():
    with pytest.raises(CommandError):
        call_command("create_api_key", "--name", "  ", stdout=io.StringIO(), stderr=io.StringIO())
    assert not ApiKey.objects.exists()
