"""OpenAPI (drf-spectacular) postprocessing hooks: PUT offered as PATCH, Lago's error answers."""

# The API-key scheme's extension lives with the authentication class (customers.authentication).

from __future__ import annotations

from typing import Any


def patch_like_put(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every PUT is also offered as PATCH, as the API answers
    it (billing_project.api.middleware routes a PATCH to the view's PUT, as Lago's update routes),
    except on views that say `patch_as_put = False` (Lago routes their PUT alone)."""
    put_only = {
        path
        for path, _regex, method, callback in getattr(generator, "endpoints", None) or ()
        if method == "PUT" and not getattr(getattr(callback, "cls", None), "patch_as_put", True)
    }
    for path, operations in result.get("paths", {}).items():
        put = operations.get("put")
        if put is not None and "patch" not in operations and path not in put_only:
            operations["patch"] = {**put, "operationId": f"{put.get('operationId', 'update')}Patch"}
    return result


# The errors any operation can answer (billing_project.api: the edge, the exception handler).
_COMMON_ERRORS = {
    "400": "Bad request: not JSON, nested too deep, or the root key is missing",
    "401": "No API key, or an unknown or revoked one",
    "404": "No such resource",
    "413": "Body too large",
    "422": "Validation errors or a business rule refused the request",
    "503": "The database (or ingestion) is unavailable: retry after Retry-After",
}
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "integer"},
        "error": {"type": "string"},
        "code": {"type": "string"},
        "error_details": {"type": "object", "additionalProperties": True},
    },
    "required": ["status", "error"],
}


def document_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every operation documents Lago's error answers in
    one `LagoError` schema (most declared none, or an untyped object)."""
    result.setdefault("components", {}).setdefault("schemas", {})["LagoError"] = _ERROR_SCHEMA
    error = {"$ref": "#/components/schemas/LagoError"}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for status, description in _COMMON_ERRORS.items():
                declared = responses.get(status, {}).get("content", {}).get("application/json", {}).get("schema")
                if declared in (None, {"type": "object"}, {"type": "object", "additionalProperties": {}}):
                    responses[status] = {
                        "description": responses.get(status, {}).get("description") or description,
                        "content": {"application/json": {"schema": error}},
                    }
    return result
