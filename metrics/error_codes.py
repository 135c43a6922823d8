"""Stable error codes of the metrics app (Lago's), beside the shared billing_project.errors.ErrorCode."""

from enum import StrEnum


class MetricsErrorCode(StrEnum):
    NO_EVENTS = "no_events"
    TOO_MANY_EVENTS = "too_many_events"
    INVALID_FORMAT = "invalid_format"
    # Ingestion kept meeting deadlocks: the client retries after Retry-After.
    INGESTION_BUSY = "ingestion_busy"
