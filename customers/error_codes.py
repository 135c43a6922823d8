"""Stable error codes of the customers app (Lago's), beside the shared billing_project.errors.ErrorCode."""

from enum import StrEnum


class CustomersErrorCode(StrEnum):
    CURRENCIES_DOES_NOT_MATCH = "currencies_does_not_match"
    # An unknown billing_configuration.document_locale (Lago's code).
    INVALID_VALUE = "invalid_value"
