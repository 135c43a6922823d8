"""Payment providers: how money is asked for (Stripe) or acknowledged (manual).

A provider turns a pending `Payment` into a `ChargeOutcome`; the payments services apply the
outcome to the ledger under row locks. Providers never touch the database rows of other apps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..error_codes import PaymentsErrorCode
from ..errors import PaymentsError


@dataclass(frozen=True)
class ChargeOutcome:
    """What the provider says about one attempt. `status` is a `payments.models.PaymentStatus`."""

    status: str
    provider_payment_id: str = ""
    failure_code: str = ""
    failure_reason: str = ""
    next_action: dict[str, Any] | None = None
    paid_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


class ProviderUnavailable(PaymentsError):
    """The provider could not be reached or answered with a server error: the attempt stays pending
    and is sent again later with the same idempotency key. The API answers Lago's 422
    `third_party_error`."""

    def __init__(self, message: str = "", provider: str = "stripe") -> None:
        super().__init__(
            {"third_party": [provider], "thirdparty_error": [message]}, PaymentsErrorCode.THIRD_PARTY_ERROR
        )
        self.args = (message,)


class ProviderRejected(Exception):
    """The provider refused a request about the customer's setup (unknown customer or payment
    method, declined card at attach). `code` is stable, `message` is for people."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or code


@dataclass(frozen=True)
class RefundOutcome:
    """What the provider says about one refund. `status` is a `payments.models.RefundStatus`."""

    status: str
    provider_refund_id: str = ""
    failure_code: str = ""
    failure_reason: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
