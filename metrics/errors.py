"""Domain errors of the metrics app (codes in metrics.error_codes); answered in Lago's shape by
billing_project.api.errors."""

from __future__ import annotations

from typing import Any

from billing_project.errors import DomainError, UnavailableError

from .error_codes import MetricsErrorCode
from .expressions import ExpressionSyntaxError


class MetricsError(DomainError):
    """A refused change of a billable metric or an ingestion."""


class MetricValidationError(MetricsError):
    """Refused with Lago's {field: [code]} details; nothing was written."""

    def __init__(self, details: dict[str, list[str]]) -> None:
        super().__init__(details)


class ExpressionValidationError(MetricValidationError):
    """An expression that does not parse: Lago's {"expression": ["invalid_expression"]}, and where
    it breaks (`expression_error`: message and 0-based position), which Lago does not tell."""

    def __init__(self, details: dict[str, list[str]], error: ExpressionSyntaxError) -> None:
        super().__init__(details)
        self.syntax_error = error

    def lago_body(self) -> dict[str, Any]:
        body = super().lago_body()
        body["expression_error"] = {"message": self.syntax_error.message, "position": self.syntax_error.position}
        return body


class IngestionError(MetricsError):
    """The request is refused and nothing was stored. `details` is Lago's error_details:
    {field: [code]} for one event, {index: {field: [code]}} or {"events": [code]} for a batch."""

    details: dict[str, Any]  # always given (DomainError's may be None)

    def __init__(self, details: dict[str, Any]) -> None:
        super().__init__(details)


class IngestionBusyError(UnavailableError, MetricsError):
    """The database kept refusing the batch (deadlock, serialization failure): nothing was
    stored, the client retries after Retry-After."""

    def __init__(self) -> None:
        super().__init__(MetricsErrorCode.INGESTION_BUSY, retry_after=1)
