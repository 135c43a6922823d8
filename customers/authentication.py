"""API-key authentication: `Authorization: Bearer <key>`, named by string in REST_FRAMEWORK.

Keys carry 256 bits of randomness, so one SHA-256 of the key is a safe, constant-cost lookup
(no password hasher: those cost ~100 ms by design). Only the hash is stored; matching is by the
full hash through a unique index, never by a prefix.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from customers.models import ApiKey, hash_api_key

# Writing last_used_at on every request would turn every read into a write; a minute is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiClient:
    """The authenticated caller: an integrating machine, identified by its API key."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, api_key: Any) -> None:
        self.api_key = api_key

    def __str__(self) -> str:
        return f"api_key:{self.api_key.name}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Any) -> tuple[ApiClient, Any] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise exceptions.NotAuthenticated()
        api_key = ApiKey.objects.filter(key_hash=hash_api_key(token.strip()), revoked_at__isnull=True).first()
        if api_key is None:
            raise exceptions.AuthenticationFailed()
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return ApiClient(api_key), api_key

    def authenticate_header(self, request: Any) -> str:
        return "Bearer"


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """OpenAPI (drf-spectacular) description of the scheme: registered on import, which DRF does
    through the setting, so `manage.py spectacular` and /api/v1/schema/ describe every endpoint as
    needing `Authorization: Bearer <api key>`."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key created with `manage.py create_api_key` or in the admin.",
        }
