"""The Stripe provider: Stripe customers and payment methods (mirrored in dj-stripe's models) and
off-session PaymentIntents that collect what a finalized invoice still owes.

Tollgate's invoice is the source of truth; Stripe only moves money. Every call passes the API key
explicitly (dj-stripe freezes some default arguments at import time) and `configure()` points the
stripe library at `settings.STRIPE_API_HOST` (localstripe in tests) or at api.stripe.com.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_CEILING, Decimal
from typing import Any, cast

import stripe
from django.conf import settings
from djstripe import models as djstripe_models
from djstripe.settings import djstripe_settings

from customers.models import Customer

from . import ChargeOutcome, ProviderRejected, ProviderUnavailable, RefundOutcome

logger = logging.getLogger(__name__)

NAME = "stripe"
COLLECTS_AUTOMATICALLY = True

# Stripe's currency rules for API amounts (https://docs.stripe.com/currencies), as of 2025.
# Zero-decimal currencies: the amount is in major units (JPY 1234 is ¥1,234).
ZERO_DECIMAL_CURRENCIES = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
# Three-decimal currencies: the amount is in thousandths, and its last digit must be 0.
THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# Sent with two decimals but only whole units are accepted: the amount must be divisible by 100.
WHOLE_UNITS_IN_TWO_DECIMALS = frozenset({"ISK"})


def _stripe_unit(currency: str) -> tuple[int, int]:
    """(decimal exponent of the API amount, the step the API amount must be a multiple of)."""
    code = currency.upper()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0, 1
    if code in THREE_DECIMAL_CURRENCIES:
        return 3, 10
    if code in WHOLE_UNITS_IN_TWO_DECIMALS:
        return 2, 100
    return 2, 1


def stripe_amount(amount: Decimal, currency: str) -> int:
    """`amount` (major units) as the integer Stripe expects, rounded UP to a step Stripe accepts.

    Rounding up, not half-up: BHD 1.234 due is charged as 1240 (1.240). Rounding down would
    leave fils that no card payment can ever collect and the invoice open forever; rounding up
    collects at most one step (less than 0.010 BHD) above the amount due, and the payment records
    exactly what was charged. Amounts already on a step (USD cents, JPY yen) are unchanged.
    """
    exponent, step = _stripe_unit(currency)
    minor = int(Decimal(amount).scaleb(exponent).to_integral_value(rounding=ROUND_CEILING))
    return -(-minor // step) * step


def chargeable_step(currency: str) -> Decimal:
    """The smallest difference between two amounts Stripe can charge (BHD 0.010, USD 0.01, JPY 1)."""
    exponent, step = _stripe_unit(currency)
    return Decimal(step).scaleb(-exponent)


def from_stripe_amount(minor: int, currency: str) -> Decimal:
    """Stripe's integer amount back to major units, exactly."""
    exponent, _ = _stripe_unit(currency)
    return Decimal(minor).scaleb(-exponent)


def configure() -> None:
    """Point the stripe library at STRIPE_API_HOST when set (localstripe, stripe-mock), else Stripe.

    dj-stripe assigns `stripe.api_base = settings.STRIPE_API_HOST` at import even when the setting
    is empty, which would break every call: an empty host means api.stripe.com.
    """
    stripe.api_base = getattr(settings, "STRIPE_API_HOST", "") or stripe.DEFAULT_API_BASE
    # The stripe library retries network failures itself, with an idempotency key of its own.
    stripe.max_network_retries = 2


def secret_key() -> str:
    return djstripe_settings.STRIPE_SECRET_KEY


def is_configured() -> bool:
    return bool(secret_key())


def _options() -> dict[str, Any]:
    configure()
    return {"api_key": secret_key(), "stripe_version": djstripe_settings.STRIPE_API_VERSION}


@contextmanager
def _transient_errors() -> Iterator[None]:
    """Errors worth retrying later (network, rate limit, Stripe 5xx, bad credentials) become
    ProviderUnavailable; everything else is the caller's to handle."""
    try:
        yield
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.AuthenticationError) as error:
        raise ProviderUnavailable(str(error)) from error
    except stripe.APIError as error:
        raise ProviderUnavailable(str(error)) from error


def _as_dict(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


# --- Customers and payment methods --------------------------------------------------------------


def _first_email(emails: str) -> str | None:
    first = emails.split(",")[0].strip()
    return first or None


def customer_ensure(*, customer: Customer) -> str:
    """Create the customer's Stripe customer, or link the one named by `provider_customer_id`;
    mirror it in dj-stripe's Customer. Returns the Stripe customer id."""
    options = _options()
    with _transient_errors():
        try:
            if customer.provider_customer_id:
                data = stripe.Customer.retrieve(customer.provider_customer_id, **options)
            else:
                data = stripe.Customer.create(
                    name=customer.name or customer.legal_name or customer.external_id,
                    # None is left out of the request by stripe-python (its types want a str).
                    email=_first_email(customer.email),  # type: ignore[arg-type]
                    metadata={"tollgate_customer_id": str(customer.id), "external_customer_id": customer.external_id},
                    # A second sync of the same customer (a retried task) gets the same Stripe customer.
                    idempotency_key=f"tollgate:customer:{customer.id}:create",
                    **options,
                )
        except stripe.InvalidRequestError as error:
            raise ProviderRejected(error.code or "invalid_request", error.user_message or str(error)) from error
    djstripe_models.Customer.sync_from_stripe_data(data, api_key=options["api_key"])
    return data["id"]


def payment_method_attach(*, stripe_customer_id: str, payment_method_id: str, set_as_default: bool) -> dict[str, Any]:
    """Attach a payment method (e.g. `pm_card_visa` in test mode) to the Stripe customer and, if
    asked, make it the default used for invoices. Mirrors both in dj-stripe."""
    options = _options()
    with _transient_errors():
        try:
            payment_method = stripe.PaymentMethod.attach(payment_method_id, customer=stripe_customer_id, **options)
            if set_as_default:
                customer_data = stripe.Customer.modify(
                    stripe_customer_id,
                    invoice_settings={"default_payment_method": payment_method["id"]},
                    **options,
                )
            else:
                customer_data = stripe.Customer.retrieve(stripe_customer_id, **options)
        except stripe.CardError as error:
            raise ProviderRejected(error.code or "card_declined", error.user_message or str(error)) from error
        except stripe.InvalidRequestError as error:
            raise ProviderRejected(error.code or "invalid_request", error.user_message or str(error)) from error
    djstripe_models.Customer.sync_from_stripe_data(customer_data, api_key=options["api_key"])
    djstripe_models.PaymentMethod.sync_from_stripe_data(payment_method, api_key=options["api_key"])
    return _as_dict(payment_method)


def payment_method_set_default(*, stripe_customer_id: str, payment_method_id: str) -> None:
    options = _options()
    with _transient_errors():
        try:
            customer_data = stripe.Customer.modify(
                stripe_customer_id, invoice_settings={"default_payment_method": payment_method_id}, **options
            )
        except stripe.InvalidRequestError as error:
            raise ProviderRejected(error.code or "invalid_request", error.user_message or str(error)) from error
    djstripe_models.Customer.sync_from_stripe_data(customer_data, api_key=options["api_key"])


def default_payment_method(*, stripe_customer_id: str) -> str | None:
    """The customer's default payment method for invoices, asked of Stripe (the dashboard may
    have changed it since the last sync)."""
    options = _options()
    with _transient_errors():
        try:
            data = _as_dict(stripe.Customer.retrieve(stripe_customer_id, **options))
        except stripe.InvalidRequestError as error:
            raise ProviderRejected(error.code or "invalid_request", error.user_message or str(error)) from error
    if data.get("deleted"):
        return None
    payment_method = (data.get("invoice_settings") or {}).get("default_payment_method")
    if isinstance(payment_method, dict):
        payment_method = payment_method.get("id")
    return payment_method or None


# --- PaymentIntents -----------------------------------------------------------------------------


def outcome_from_payment_intent(payment_intent: dict[str, Any]) -> ChargeOutcome:
    """Map a PaymentIntent (API answer or webhook payload) to our payment status."""
    from payments.models import PaymentStatus

    status = payment_intent.get("status")
    pi_id = payment_intent.get("id") or ""
    error = payment_intent.get("last_payment_error") or {}
    if status == "succeeded":
        # No paid_at: an intent carries its creation time only, and a 3-D Secure success can come
        # hours later. The caller knows better (the webhook event's time, or now).
        return ChargeOutcome(PaymentStatus.SUCCEEDED, pi_id, raw=payment_intent)
    if status in ("processing", "requires_capture"):
        return ChargeOutcome(PaymentStatus.PROCESSING, pi_id, raw=payment_intent)
    if status == "requires_action":
        return ChargeOutcome(
            PaymentStatus.REQUIRES_ACTION, pi_id, next_action=payment_intent.get("next_action"), raw=payment_intent
        )
    if status == "requires_confirmation":
        return ChargeOutcome(PaymentStatus.PENDING, pi_id, raw=payment_intent)
    if status == "canceled":
        reason = payment_intent.get("cancellation_reason") or "The payment was canceled."
        return ChargeOutcome(PaymentStatus.FAILED, pi_id, "canceled", reason, raw=payment_intent)
    # requires_payment_method: the last confirmation failed (or no payment method was usable).
    code = error.get("decline_code") or error.get("code") or "requires_payment_method"
    message = error.get("message") or "The payment method was declined or is missing."
    if error.get("code") == "authentication_required":
        # Off-session 3-D Secure: the customer can still authenticate this intent (see below).
        return ChargeOutcome(
            PaymentStatus.REQUIRES_ACTION,
            pi_id,
            "authentication_required",
            message,
            next_action=payment_intent.get("next_action"),
            raw=payment_intent,
        )
    return ChargeOutcome(PaymentStatus.FAILED, pi_id, code, message, raw=payment_intent)


def _outcome_from_card_error(error: stripe.CardError, options: dict[str, Any]) -> ChargeOutcome:
    """A confirmation that failed at once (decline, authentication_required off-session)."""
    from payments.models import PaymentStatus

    # json_body is the decoded JSON object of Stripe's answer (typed as a bare object).
    body = cast(dict[str, Any], error.json_body or {}).get("error") or {}
    payment_intent = body.get("payment_intent") or {}
    pi_id = payment_intent.get("id") or ""
    if not pi_id and body.get("charge"):
        # localstripe (and some older API versions) name only the charge; it knows its intent.
        try:
            charge = _as_dict(stripe.Charge.retrieve(body["charge"], **options))
            pi_id = charge.get("payment_intent") or ""
        except stripe.StripeError:
            logger.warning("could not find the PaymentIntent of charge %s", body["charge"])
    code = body.get("decline_code") or body.get("code") or "card_declined"
    message = body.get("message") or str(error)
    if body.get("code") == "authentication_required":
        # Off-session, Stripe answers 3-D Secure with this decline: the customer must come back
        # and authenticate this same PaymentIntent, so it is an action to take, not a refusal.
        return ChargeOutcome(
            PaymentStatus.REQUIRES_ACTION,
            pi_id,
            code,
            message,
            next_action=payment_intent.get("next_action"),
            raw=payment_intent,
        )
    return ChargeOutcome(PaymentStatus.FAILED, pi_id, code, message, raw=payment_intent)


def payment_intent_create(
    *,
    amount: int,
    currency: str,
    stripe_customer_id: str,
    payment_method_id: str,
    idempotency_key: str,
    metadata: dict[str, str],
) -> ChargeOutcome:
    """Create and confirm an off-session PaymentIntent for `amount` (Stripe's integer units).

    The same idempotency key sent twice returns the first PaymentIntent instead of charging again
    (Stripe keeps keys for 24 hours; Tollgate's own locks and constraints guard beyond that).
    """
    from payments.models import PaymentStatus

    options = _options()
    params: dict[str, Any] = {
        "amount": amount,
        "currency": currency.lower(),
        "customer": stripe_customer_id,
        "payment_method": payment_method_id,
        "confirm": True,
        "off_session": True,
        "metadata": metadata,
    }
    with _transient_errors():
        try:
            payment_intent = stripe.PaymentIntent.create(idempotency_key=idempotency_key, **params, **options)
        except stripe.CardError as error:
            return _outcome_from_card_error(error, options)
        except stripe.InvalidRequestError as error:
            # e.g. amount_too_small, a detached payment method: this attempt cannot succeed.
            return ChargeOutcome(
                PaymentStatus.FAILED, "", error.code or "invalid_request", error.user_message or str(error)
            )
    return outcome_from_payment_intent(_as_dict(payment_intent))


def payment_intent_retrieve(*, payment_intent_id: str) -> ChargeOutcome:
    options = _options()
    with _transient_errors():
        payment_intent = stripe.PaymentIntent.retrieve(payment_intent_id, **options)
    return outcome_from_payment_intent(_as_dict(payment_intent))


def payment_intent_cancel(*, payment_intent_id: str) -> ChargeOutcome:
    """Cancel an intent still waiting for the customer, so that a new attempt cannot end in two
    charges. If it can no longer be canceled (it succeeded meanwhile), say what it became."""
    options = _options()
    with _transient_errors():
        try:
            payment_intent = stripe.PaymentIntent.cancel(payment_intent_id, **options)
        except stripe.InvalidRequestError:
            payment_intent = stripe.PaymentIntent.retrieve(payment_intent_id, **options)
    return outcome_from_payment_intent(_as_dict(payment_intent))


# --- Refunds ------------------------------------------------------------------------------------


def outcome_from_refund(refund: dict[str, Any]) -> RefundOutcome:
    """Map a Refund (API answer or webhook payload) to our refund status. Card refunds succeed at
    once; some methods answer `pending` (or `requires_action`) and settle later by webhook."""
    from payments.models import RefundStatus

    status = refund.get("status")
    refund_id = refund.get("id") or ""
    if status == "succeeded":
        return RefundOutcome(RefundStatus.SUCCEEDED, refund_id, raw=refund)
    if status in ("failed", "canceled"):
        code = refund.get("failure_reason") or status
        return RefundOutcome(RefundStatus.FAILED, refund_id, code, f"Stripe refund {status}: {code}", raw=refund)
    return RefundOutcome(RefundStatus.PENDING, refund_id, raw=refund)


def refund_find(*, payment_intent_id: str, refund_id: str) -> dict[str, Any] | None:
    """The Stripe refund made for our Refund row `refund_id` (by the metadata we sent), if any."""
    options = _options()
    with _transient_errors():
        refunds = stripe.Refund.list(payment_intent=payment_intent_id, limit=100, **options)
        for refund in refunds.auto_paging_iter():
            data = _as_dict(refund)
            if (data.get("metadata") or {}).get("refund_id") == refund_id:
                return data
    return None


def refund_create(
    *, payment_intent_id: str, amount: int, idempotency_key: str, metadata: dict[str, str]
) -> RefundOutcome:
    """Refund `amount` (Stripe's integer units) of a succeeded PaymentIntent.

    Never twice for one of our rows: the request carries an idempotency key, and before it the
    intent's refunds are searched for one already made for this row (metadata `refund_id`), which
    covers a worker that died after Stripe answered, Stripe's 24-hour key memory, and servers that
    ignore keys (localstripe).
    """
    from payments.models import RefundStatus

    existing = refund_find(payment_intent_id=payment_intent_id, refund_id=metadata["refund_id"])
    if existing is not None:
        return outcome_from_refund(existing)
    options = _options()
    with _transient_errors():
        try:
            refund = stripe.Refund.create(
                payment_intent=payment_intent_id,
                amount=amount,
                metadata=metadata,
                idempotency_key=idempotency_key,
                **options,
            )
        except stripe.InvalidRequestError as error:
            # Already refunded, more than what is left on the charge, a failed payment: final.
            return RefundOutcome(
                RefundStatus.FAILED, "", error.code or "invalid_request", error.user_message or str(error)
            )
    return outcome_from_refund(_as_dict(refund))


def refund_retrieve(*, refund_id: str) -> RefundOutcome:
    options = _options()
    with _transient_errors():
        refund = stripe.Refund.retrieve(refund_id, **options)
    return outcome_from_refund(_as_dict(refund))
