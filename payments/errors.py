"""Domain errors of the payments app (codes in payments.error_codes); answered in Lago's shape by
billing_project.api.errors."""

from __future__ import annotations

from typing import Any

from billing_project.errors import DomainError, ErrorCode


class PaymentsError(DomainError):
    """A refused payments request."""


class PaymentError(PaymentsError):
    """A business rule refused the request. `code` is the stable (Lago-style) error code; `field`
    names the input at fault, if any; `http_status` is how the API answers it."""

    def __init__(self, code: str, *, field: str | None = None, http_status: int = 422, message: str = "") -> None:
        super().__init__({field: [code]} if field else None, code, http_status)
        self.field = field
        self.http_status = http_status
        self.message = message or code
        self.args = (self.message,)

    def lago_body(self) -> dict[str, Any]:
        # With a field, Lago answers validation_errors naming the field; otherwise the rule's code.
        if self.field:
            return {"code": ErrorCode.VALIDATION_ERRORS.value, "error_details": self.details}
        return {"code": self.code}
