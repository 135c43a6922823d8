"""The edge of the API (/api/): what every request is checked for before routing, in one place."""

# - a NUL character in the path is a 404 (no resource is named with one: ids and codes refuse it),
#   in a query parameter a 422 naming the parameter (PostgreSQL text cannot hold it);
# - a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE is a JSON 413, before it is read;
# - PATCH reaches the PUT handler of a view that has no PATCH of its own: Lago routes its updates
#   with both (Rails' `resources`); a view whose PUT Lago routes alone (`put :refresh`,
#   `put "/organizations"`) says `patch_as_put = False`, and PATCH there is a 405;
# - a database that cannot be reached is a JSON 503 with Retry-After, also outside DRF's views.
# The JSON body itself is checked by billing_project.api.parsers.LagoJSONParser; errors raised
# in DRF views are answered by billing_project.api.errors.exception_handler.

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from billing_project.errors import ErrorCode

from .errors import database_unavailable, error_body

API_PREFIX = "/api/"


class ApiEdgeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        refused = self.refuse(request)
        return refused if refused is not None else self.get_response(request)

    @staticmethod
    def refuse(request: HttpRequest) -> HttpResponse | None:
        if "\x00" in request.path:
            return JsonResponse(error_body(404, code=ErrorCode.RESOURCE_NOT_FOUND.value), status=404)
        bad = sorted({key for key, values in request.GET.lists() if "\x00" in key or any("\x00" in v for v in values)})
        if bad:
            details = {key.replace("\x00", ""): ["value_is_invalid"] for key in bad}
            return JsonResponse(error_body(422, code="validation_errors", error_details=details), status=422)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"status": 400, "error": "BadRequest: invalid Content-Length"}, status=400)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and length > limit:
            return JsonResponse(error_body(413, code="payload_too_large"), status=413)
        return None

    def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: Any) -> None:
        if request.method == "PATCH" and request.path.startswith(API_PREFIX):
            view_class = getattr(view, "cls", None) or getattr(view, "view_class", None)
            if (
                view_class is not None
                and hasattr(view_class, "put")
                and not hasattr(view_class, "patch")
                and getattr(view_class, "patch_as_put", True)
            ):
                request.method = "PUT"

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None
        unavailable = database_unavailable(exception)
        if unavailable is None:
            return None
        body = error_body(503, code=unavailable.code)
        return JsonResponse(body, status=503, headers={"Retry-After": str(unavailable.retry_after)})
