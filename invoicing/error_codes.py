"""Stable error codes of the invoicing app (Lago's), beside the shared billing_project.errors.ErrorCode."""

from enum import StrEnum


class InvoicingErrorCode(StrEnum):
    CURRENCIES_DOES_NOT_MATCH = "currencies_does_not_match"
    IS_DRAFT = "is_draft"
    IS_NOT_DRAFT = "is_not_draft"
    # DELETE /invoices/{id} discarding a correction: only a correction draft can be discarded.
    IS_NOT_CORRECTION_DRAFT = "is_not_correction_draft"
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
    # Invoice and fee actions (invoicing.invoice_actions), as Lago's services.
    NOT_DELETABLE = "not_deletable"
    NOT_DISPUTABLE = "not_disputable"
    INVALID_STATUS = "invalid_status"
    INVOICED_FEE = "invoiced_fee"
    # Wallets (invoicing.wallets), as Lago's Wallets:: and WalletTransactions:: validators.
    CUSTOMER_NOT_FOUND = "customer_not_found"
    WALLET_LIMIT_REACHED = "wallet_limit_reached"
    WALLET_IS_TERMINATED = "wallet_is_terminated"
    VALUE_IS_OUT_OF_RANGE = "value_is_out_of_range"
    INVALID_PAID_CREDITS = "invalid_paid_credits"
    INVALID_GRANTED_CREDITS = "invalid_granted_credits"
    INVALID_VOIDED_CREDITS = "invalid_voided_credits"
    INSUFFICIENT_CREDITS = "insufficient_credits"
    AMOUNT_BELOW_MINIMUM = "amount_below_minimum"
    AMOUNT_ABOVE_MAXIMUM = "amount_above_maximum"
    INVALID_LIMITATIONS = "invalid_limitations"
    INVALID_RECURRING_RULE = "invalid_recurring_rule"
    INVALID_NUMBER_OF_RECURRING_RULES = "invalid_number_of_recurring_rules"
    # E-mail of documents (invoicing.mail), as Lago's Emails::ResendService.
    EMAIL_SETTINGS_DISABLED = "email_settings_disabled"
    CREDIT_NOTE_NOT_FINALIZED = "credit_note_not_finalized"
    PAYMENT_RECEIPT_NOT_FINALIZED = "payment_receipt_not_finalized"
    # Estimates and usage monitoring (Lago's codes).
    DOES_NOT_MATCH_AN_INSTANT_CHARGE = "does_not_match_an_instant_charge"
    NO_EVENTS = "no_events"
    TOO_MANY_EVENTS = "too_many_events"
