"""One error shape for the whole API, as Lago answers them."""

# 400 {"status": 400, "error": "BadRequest: <reason>"}
# 401 {"status": 401, "error": "Unauthorized"}
# 403 {"status": 403, "error": "Forbidden", "code": "<code>"}
# 404 {"status": 404, "error": "Not Found", "code": "<resource>_not_found"}
# 405 {"status": 405, "error": "Method Not Allowed", "code": "<reason>"}
# 413 {"status": 413, "error": "Payload Too Large", "code": "payload_too_large"}
# 422 {"status": 422, "error": "Unprocessable Entity", "code": "validation_errors",
#      "error_details": {"<field>": ["<code>", ...]}}
#     (or, for a business rule, "code": "<rule_code>" with optional error_details)
# 503 {"status": 503, "error": "Service Unavailable", "code": "service_unavailable"} + Retry-After

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.response import Response

from billing_project.errors import DomainError, ErrorCode, ForbiddenError, NotFoundError, UnavailableError

logger = logging.getLogger(__name__)

# DRF's built-in validation codes, spoken in Lago's vocabulary.
_LAGO_CODES = {
    "required": "value_is_mandatory",
    "null": "value_is_mandatory",
    "blank": "value_is_mandatory",
    "unique": "value_already_exist",
    "invalid": "value_is_invalid",
    "invalid_choice": "value_is_invalid",
    "not_a_list": "value_is_invalid",
    "not_a_dict": "value_is_invalid",
    "empty": "value_is_mandatory",
    "max_length": "value_is_invalid",
    "min_length": "value_is_invalid",
    "max_value": "value_is_invalid",
    "min_value": "value_is_invalid",
    "max_digits": "value_is_invalid",
    "max_decimal_places": "value_is_invalid",
    "max_whole_digits": "value_is_invalid",
    "max_string_length": "value_is_invalid",
    "date": "invalid_date",
    "datetime": "invalid_date",
    "make_aware": "invalid_date",
    "overflow": "value_is_invalid",
}


class BadRequest(exceptions.ParseError):
    """400 for a request that is not of the expected form (missing root key, bad JSON)."""


class NotFound(NotFoundError):
    """404 naming the missing resource: code `<resource>_not_found`."""


class Unprocessable(DomainError):
    """422 with Lago's codes. `details` maps a field (or an index) to a list of codes.

    `code` defaults to "validation_errors"; business rules use their own code
    (e.g. "currencies_does_not_match") with or without details.
    """

    def __init__(self, details: dict[str, Any] | None = None, code: str = ErrorCode.VALIDATION_ERRORS):
        super().__init__(details, code)


class Forbidden(ForbiddenError):
    pass


def lago_error_details(codes: Any) -> Any:
    """Turn DRF's `ValidationError.get_codes()` tree into Lago's {field: [code, ...]} tree."""
    if isinstance(codes, dict):
        return {str(key): lago_error_details(value) for key, value in codes.items()}
    if isinstance(codes, list):
        if all(isinstance(item, str) for item in codes):
            return [_LAGO_CODES.get(item, item) for item in codes]
        flat: dict[str, Any] = {}
        for index, item in enumerate(codes):
            if item:
                flat[str(index)] = lago_error_details(item)
        return flat
    return [_LAGO_CODES.get(str(codes), str(codes))]


def error_body(status_code: int, **extra: Any) -> dict[str, Any]:
    names = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        406: "Not Acceptable",
        413: "Payload Too Large",
        415: "Unsupported Media Type",
        422: "Unprocessable Entity",
        429: "Too Many Requests",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }
    return {"status": status_code, "error": names.get(status_code, "Error"), **extra}


def domain_error_response(error: DomainError) -> Response:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return Response(error_body(error.status, **error.lago_body()), status=error.status, headers=headers)


def database_unavailable(error: Exception) -> UnavailableError | None:
    """A database that cannot be reached (or refused to go on) is a 503, not a 500. Errors in
    the query itself (a bug) are not: they stay 500s, loudly."""
    if isinstance(error, (OperationalError, InterfaceError)):
        logger.warning("database unavailable: %s", error)
        return UnavailableError()
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: every API error leaves in the documented shape. The one place
    domain errors (billing_project.errors.DomainError, every app's errors) become answers."""
    if isinstance(exc, Http404):
        view = context.get("view")
        resource = getattr(view, "resource_name", None) or "resource"
        exc = NotFound(resource)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = Forbidden()
    elif isinstance(exc, DatabaseError):
        exc = database_unavailable(exc) or exc

    if isinstance(exc, DomainError):
        return domain_error_response(exc)
    if isinstance(exc, exceptions.ValidationError):
        body = error_body(422, code="validation_errors", error_details=lago_error_details(exc.get_codes()))
        return Response(body, status=422)
    if isinstance(exc, exceptions.ParseError):
        reason = str(exc.detail)
        return Response({"status": 400, "error": f"BadRequest: {reason}"}, status=400)
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return Response({"status": 400, "error": f"BadRequest: {exc.detail}"}, status=400)
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        return Response(error_body(401), status=401, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, exceptions.NotFound):
        code = exc.get_codes()
        if not isinstance(code, str) or not code.endswith("_not_found"):
            code = ErrorCode.RESOURCE_NOT_FOUND.value
        return Response(error_body(404, code=code), status=404)
    if isinstance(exc, exceptions.PermissionDenied):
        return Response(error_body(403, code="forbidden"), status=403)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return Response(error_body(405, code=ErrorCode.METHOD_NOT_ALLOWED.value), status=405)
    if isinstance(exc, exceptions.APIException):
        headers = {}
        wait: float | None = getattr(exc, "wait", None)  # Throttled's (set by DRF, absent from its stubs)
        if isinstance(exc, exceptions.Throttled) and wait:
            headers["Retry-After"] = str(int(wait))
        return Response(error_body(exc.status_code), status=exc.status_code, headers=headers)
    return None


@csrf_exempt
def api_not_found(request: Any, exception: Exception | None = None) -> JsonResponse:
    """Unknown path under /api/, whatever the method: JSON, not Django's HTML page (nor its CSRF
    page: an API client has no CSRF token, and there is nothing here to protect)."""
    return JsonResponse(error_body(404, code=ErrorCode.RESOURCE_NOT_FOUND.value), status=404)
