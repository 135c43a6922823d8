"""PaymentIntent states (API answers and webhook payloads) mapped to payment states."""

from __future__ import annotations

import pytest

from payments.models import PaymentStatus
from payments.providers.stripe import outcome_from_payment_intent


@pytest.mark.parametrize(
    ("intent", "status", "code"),
    [
        ({"status": "succeeded"}, PaymentStatus.SUCCEEDED, ""),
        ({"status": "processing"}, PaymentStatus.PROCESSING, ""),
        ({"status": "requires_capture"}, PaymentStatus.PROCESSING, ""),
        ({"status": "requires_action", "next_action": {"type": "redirect_to_url"}}, PaymentStatus.REQUIRES_ACTION, ""),
        ({"status": "requires_confirmation"}, PaymentStatus.PENDING, ""),
        ({"status": "canceled", "cancellation_reason": "abandoned"}, PaymentStatus.FAILED, "canceled"),
        (
            {
                "status": "requires_payment_method",
                "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds", "message": "m"},
            },
            PaymentStatus.FAILED,
            "insufficient_funds",
        ),
        ({"status": "requires_payment_method"}, PaymentStatus.FAILED, "requires_payment_method"),
        # Off-session 3-D Secure on real Stripe: a decline the customer can still fix.
        (
            {"status": "requires_payment_method", "last_payment_error": {"code": "authentication_required"}},
            PaymentStatus.REQUIRES_ACTION,
            "authentication_required",
        ),
    ],
)
def test_outcome_from_payment_intent(intent, status, code):
    outcome = outcome_from_payment_intent({"id": "pi_1", **intent})

    assert (outcome.status, outcome.failure_code, outcome.provider_payment_id) == (status, code, "pi_1")
