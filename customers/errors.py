"""Domain errors of the customers app (codes in customers.error_codes); answered in Lago's shape
by billing_project.api.errors."""

from __future__ import annotations

from billing_project.errors import DomainError


class CustomersError(DomainError):
    """A refused change of a customer, the organization or an API key."""


class CustomersValidationError(CustomersError):
    """Refused with Lago's {field: [code]} details; nothing was written."""

    def __init__(self, details: dict[str, list[str]]) -> None:
        super().__init__(details)
