"""Domain errors of the plans app, in Lago's vocabulary. Services raise them; the API turns them
into Lago's error shape (plans.api.views) and the admin into form messages."""

from __future__ import annotations

from typing import Any


class PlansError(Exception):
    """A refused change. `code` is Lago's error code ("validation_errors" for field errors,
    or a business rule such as "currencies_does_not_match"); `details` maps a field to codes."""

    status = 422

    def __init__(self, details: dict[str, list[str]] | None = None, code: str = "validation_errors") -> None:
        self.details = details
        self.code = code
        super().__init__(f"{code}: {details}" if details else code)

    @classmethod
    def field(cls, field: str, code: str) -> PlansError:
        return cls({field: [code]})


class NotFoundError(PlansError):
    """A referenced resource does not exist: Lago answers 404 `<resource>_not_found`."""

    status = 404

    def __init__(self, resource: str) -> None:
        super().__init__(None, f"{resource}_not_found")
        self.resource = resource


class ForbiddenError(PlansError):
    """A feature Tollgate does not offer (Lago's premium-only `plan_overrides`)."""

    status = 403

    def __init__(self, code: str = "feature_unavailable") -> None:
        super().__init__(None, code)


def merge_details(target: dict[str, list[str]], more: dict[str, Any]) -> dict[str, list[str]]:
    for key, codes in more.items():
        bucket = target.setdefault(key, [])
        bucket.extend(code for code in codes if code not in bucket)
    return target
