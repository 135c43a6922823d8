"""Stable error codes of the invoicing app (Lago's), beside the shared billing_project.errors.ErrorCode."""

from enum import StrEnum


class InvoicingErrorCode(StrEnum):
    CURRENCIES_DOES_NOT_MATCH = "currencies_does_not_match"
    IS_DRAFT = "is_draft"
    IS_NOT_DRAFT = "is_not_draft"
    NOT_VOIDABLE = "not_voidable"
    NO_VOIDABLE_AMOUNT = "no_voidable_amount"
    NO_REFUND = "no_refund"
    INVALID_REFUND_STATUS = "invalid_refund_status"
    INVALID_TYPE_OR_STATUS = "invalid_type_or_status"
    INVOICE_NOT_FINALIZED = "invoice_not_finalized"
    REFUND_HANDLED_BY_PROVIDER = "refund_handled_by_provider"
    HIGHER_THAN_REMAINING_FEE_AMOUNT = "higher_than_remaining_fee_amount"
    HIGHER_THAN_REMAINING_INVOICE_AMOUNT = "higher_than_remaining_invoice_amount"
    NO_FEES = "no_fees"
