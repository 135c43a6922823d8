"""Domain errors of the metrics app (codes in metrics.error_codes); answered in Lago's shape by
billing_project.api.errors."""

from __future__ import annotations

from typing import Any

from billing_project.errors import DomainError, UnavailableError

from .error_codes import MetricsErrorCode


class MetricsError(DomainError):
    """A refused change of a billable metric or an ingestion."""


class MetricValidationError(MetricsError):
    """Refused with Lago's {field: [code]} details; nothing was written."""

    def __init__(self, details: dict[str, list[str]]) -> None:
        super().__init__(details)


class IngestionError(MetricsError):
    """The request is refused and nothing was stored. `details` is Lago's error_details:
    {field: [code]} for one event, {index: {field: [code]}} or {"events": [code]} for a batch."""

    def __init__(self, details: dict[str, Any]) -> None:
        super().__init__(details)


class IngestionBusyError(UnavailableError, MetricsError):
    """The database kept refusing the batch (deadlock, serialization failure): nothing was
    stored, the client retries after Retry-After."""

    def __init__(self) -> None:
        super().__init__(MetricsErrorCode.INGESTION_BUSY, retry_after=1)
