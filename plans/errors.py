"""Domain errors of the plans app, in Lago's vocabulary (codes in plans.error_codes). Services
raise them; billing_project.api.errors answers them in Lago's shape, the admin as form messages."""

from __future__ import annotations

from typing import Any

from billing_project.errors import DomainError
from billing_project.errors import ForbiddenError as _Forbidden
from billing_project.errors import NotFoundError as _NotFound

from .error_codes import PlansErrorCode


class PlansError(DomainError):
    """A refused change. `code` is Lago's error code ("validation_errors" for field errors,
    or a business rule such as "currencies_does_not_match"); `details` maps a field to codes."""


class NotFoundError(_NotFound, PlansError):
    """A referenced resource does not exist: Lago answers 404 `<resource>_not_found`."""


class ForbiddenError(_Forbidden, PlansError):
    """A feature Tollgate does not offer (Lago's premium-only `plan_overrides`)."""

    def __init__(self, code: str = PlansErrorCode.FEATURE_UNAVAILABLE) -> None:
        super().__init__(code)


def merge_details(target: dict[str, list[str]], more: dict[str, Any]) -> dict[str, list[str]]:
    for key, codes in more.items():
        bucket = target.setdefault(key, [])
        bucket.extend(code for code in codes if code not in bucket)
    return target
