"""Stable error codes of the plans app (Lago's), beside the shared billing_project.errors.ErrorCode."""

from enum import StrEnum


class PlansErrorCode(StrEnum):
    CURRENCIES_DOES_NOT_MATCH = "currencies_does_not_match"
    SUBSCRIPTION_NOT_EDITABLE = "subscription_not_editable"
    TAX_IN_USE = "tax_in_use"
    ATTACHED_TO_SUBSCRIPTIONS = "attached_to_subscriptions"
    COUPON_ALREADY_APPLIED = "coupon_already_applied"
    COUPON_IS_NOT_REUSABLE = "coupon_is_not_reusable"
    FEATURE_UNAVAILABLE = "feature_unavailable"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_RATE = "invalid_rate"
    INVALID_FILTER_VALUES = "invalid_filter_values"
    INVALID_AGGREGATION_TYPE_OR_CHARGE_MODEL = "invalid_aggregation_type_or_charge_model"
    # Progressive billing's usage thresholds (Lago's UsageThresholds validations).
    MULTIPLE_RECURRING_THRESHOLDS = "multiple_recurring_thresholds"
    DUPLICATED_VALUES = "duplicated_values"
    # Fixed charges.
    NOT_SUPPORTED_ON_PLAN_IN_ARREARS = "not_supported_on_plan_in_arrears"
