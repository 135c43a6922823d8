"""Stable error codes of the payments app (Lago's), beside the shared billing_project.errors.ErrorCode."""

from enum import StrEnum


class PaymentsErrorCode(StrEnum):
    INVALID_PAYMENT_PROVIDER = "invalid_payment_provider"
    PAYMENT_PROVIDER_NOT_CONFIGURED = "payment_provider_not_configured"
    PAYMENT_PROVIDER_UNAVAILABLE = "payment_provider_unavailable"
    PAYMENT_PROCESSOR_IS_CURRENTLY_HANDLING_PAYMENT = "payment_processor_is_currently_handling_payment"
    INVALID_STATUS = "invalid_status"
    GREATER_THAN = "greater_than"
    THIRD_PARTY_ERROR = "third_party_error"
    MISSING_PAYMENT_PROVIDER_CUSTOMER = "missing_payment_provider_customer"
    # Payment requests, as Lago's PaymentRequests::CreateService.
    INVOICES_NOT_OVERDUE = "invoices_not_overdue"
    INVOICES_HAVE_DIFFERENT_CURRENCIES = "invoices_have_different_currencies"
    INVALID_EMAIL_FORMAT = "invalid_email_format"
