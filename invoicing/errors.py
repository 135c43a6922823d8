"""Domain errors of the invoicing app, in Lago's vocabulary (codes in invoicing.error_codes).
Services raise them; billing_project.api.errors answers them in Lago's shape, the admin as
messages."""

from __future__ import annotations

from billing_project.errors import DomainError
from billing_project.errors import NotAllowedError as _NotAllowed
from billing_project.errors import NotFoundError as _NotFound


class InvoicingError(DomainError):
    """A refused change. `code` is Lago's code ("validation_errors" with field `details`, or a
    business rule such as "not_allowed"/"is_not_draft"); `status` is the HTTP status to answer."""


class NotFoundError(_NotFound, InvoicingError):
    """Lago answers 404 `<resource>_not_found`."""


class NotAllowedError(_NotAllowed, InvoicingError):
    """Lago's 405 `{"status": 405, "error": "Method Not Allowed", "code": "<reason>"}`."""
