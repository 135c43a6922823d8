"""The one domain error every app's errors subclass: a stable code, optional field details and
the HTTP status the API answers with. billing_project.api.errors translates it to Lago's shape
in one DRF exception handler; the admin and commands show `code` and `details`."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Codes every app shares (Lago's vocabulary). Each app adds its own in `error_codes.py`."""

    VALIDATION_ERRORS = "validation_errors"
    VALUE_IS_MANDATORY = "value_is_mandatory"
    VALUE_IS_INVALID = "value_is_invalid"
    VALUE_ALREADY_EXIST = "value_already_exist"
    INVALID_DATE = "invalid_date"
    NOT_FOUND = "not_found"
    # Lago's catch-all route (ApplicationController#not_found: not_found_error(resource: "resource")).
    RESOURCE_NOT_FOUND = "resource_not_found"
    FORBIDDEN = "forbidden"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    SERVICE_UNAVAILABLE = "service_unavailable"


class DomainError(Exception):
    """A refused request. `code` is Lago's code ("validation_errors" with field `details`, or a
    business rule such as "currencies_does_not_match"); `details` maps a field (or an index) to
    codes; `status` is the HTTP status; `retry_after` (seconds) is sent as Retry-After."""

    status: int = 422
    code: str = ErrorCode.VALIDATION_ERRORS
    retry_after: int | None = None

    def __init__(self, details: dict[str, Any] | None = None, code: str | None = None, status: int | None = None):
        self.details = details
        if code is not None:
            self.code = str(code)
        if status is not None:
            self.status = status
        super().__init__(f"{self.code}: {details}" if details else self.code)

    @classmethod
    def field(cls, field: str, code: str) -> DomainError:
        return cls({field: [str(code)]})

    def lago_body(self) -> dict[str, Any]:
        """The part of Lago's error answer this error decides: its code and details."""
        body: dict[str, Any] = {"code": str(self.code)}
        if self.details is not None:
            body["error_details"] = self.details
        return body


class NotFoundError(DomainError):
    """Lago answers 404 `<resource>_not_found`."""

    status = 404

    def __init__(self, resource: str) -> None:
        super().__init__(None, f"{resource}_not_found")
        self.resource = resource


class ForbiddenError(DomainError):
    status = 403
    code = ErrorCode.FORBIDDEN

    def __init__(self, code: str = ErrorCode.FORBIDDEN) -> None:
        super().__init__(None, code)


class NotAllowedError(DomainError):
    """Lago's 405 `{"status": 405, "error": "Method Not Allowed", "code": "<reason>"}`."""

    status = 405

    def __init__(self, code: str = ErrorCode.METHOD_NOT_ALLOWED) -> None:
        super().__init__(None, code)


class UnavailableError(DomainError):
    """503: a dependency (the database, a lock held too long) is unavailable; retry later."""

    status = 503
    code = ErrorCode.SERVICE_UNAVAILABLE
    retry_after = 1

    def __init__(self, code: str = ErrorCode.SERVICE_UNAVAILABLE, retry_after: int = 1) -> None:
        super().__init__(None, code)
        self.retry_after = retry_after
