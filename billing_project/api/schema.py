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


def patch_like_put(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every PUT is also offered as PATCH, as the API answers
    it (billing_project.api.middleware routes a PATCH to the view's PUT, as Lago's update routes)."""
    for operations in result.get("paths", {}).values():
        put = operations.get("put")
        if put is not None and "patch" not in operations:
            operations["patch"] = {**put, "operationId": f"{put.get('operationId', 'update')}Patch"}
    return result
