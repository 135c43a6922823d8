"""OpenAPI (drf-spectacular) description of the API plumbing: the Bearer API-key scheme.

Registered by import (authentication.py imports this module), so `manage.py spectacular` and
/api/v1/schema/ describe every endpoint as needing `Authorization: Bearer <api key>`.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    # A dotted path, not the class: this module is imported by authentication.py itself.
    target_class = "billing_project.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key created with `manage.py create_api_key` or in the admin.",
        }
