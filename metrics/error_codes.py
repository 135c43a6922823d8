"""Stable error codes of the metrics app (Lago's), beside the shared billing_project.errors.ErrorCode."""

from enum import StrEnum


class MetricsErrorCode(StrEnum):
    NO_EVENTS = "no_events"
    TOO_MANY_EVENTS = "too_many_events"
    INVALID_FORMAT = "invalid_format"
    # Ingestion kept meeting deadlocks: the client retries after Retry-After.
    INGESTION_BUSY = "ingestion_busy"
    # Billable metric expressions (Lago's codes): one that does not parse, an event that has no
    # value for it (a missing property, arithmetic on a string, a division by zero).
    INVALID_EXPRESSION = "invalid_expression"
    INVALID_EVENT = "invalid_event"
    EXPRESSION_EVALUATION_FAILED = "expression_evaluation_failed"
