"""Stripe Checkout: a hosted page where the customer pays an invoice (Lago's
POST /invoices/{id}/payment_url, the portal's "Pay now", a wallet purchase's payment_url) or saves
a card (POST /customers/{id}/checkout_url, setup mode).

A Checkout link never settles anything itself. The PaymentIntent Checkout creates carries
`tollgate_checkout` and `invoice_id` in its metadata; when Stripe reports it succeeded (the
dj-stripe webhook, payments.receivers), `checkout_payment_record` writes the payment under the
invoice's lock, exactly once per PaymentIntent (the provider id is unique).

Implemented against Stripe's documented API (https://docs.stripe.com/api/checkout/sessions/create):
localstripe has no Checkout, so the tests answer these two calls with an emulation of that shape
(tests/payments/localstripe_server.py) and pay through a real localstripe PaymentIntent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from customers.models import Customer, PaymentProvider
from invoicing.locks import lock_invoice
from invoicing.models import Invoice, InvoiceStatus
from invoicing.models import PaymentStatus as InvoicePaymentStatus

from .errors import PaymentError
from .models import Payment, PaymentProviderName, PaymentStatus, PaymentTrigger
from .providers import ProviderRejected, ProviderUnavailable
from .providers import stripe as stripe_provider
from .services import _invoice_payment_state_refresh, _latest_attempt_number, stripe_customer_sync
from .signals import payment_succeeded_in_tx

logger = logging.getLogger(__name__)

# Lago's PaymentProviders::StripeProvider::SUCCESS_REDIRECT_URL, when nothing else is set.
DEFAULT_SUCCESS_URL = "https://www.getlago.com/"
# The metadata key marking a PaymentIntent as Checkout's for a Tollgate invoice.
CHECKOUT_METADATA_KEY = "tollgate_checkout"


@dataclass(frozen=True)
class CheckoutLink:
    url: str
    session_id: str


def _success_url(success_url: str | None) -> str:
    return success_url or settings.TOLLGATE_CHECKOUT_SUCCESS_URL or DEFAULT_SUCCESS_URL


def _stripe_customer_id(customer: Customer) -> str:
    """The customer's Stripe customer, created if needed. Lago's refusals: no provider linked
    (`no_linked_payment_provider`), Stripe not configured, the Stripe customer missing."""
    if customer.payment_provider != PaymentProvider.STRIPE:
        raise PaymentError("no_linked_payment_provider", field="base")
    if not stripe_provider.is_configured():
        raise PaymentError(
            "payment_provider_not_configured",
            message="No Stripe secret key is configured (STRIPE_TEST_SECRET_KEY or STRIPE_LIVE_SECRET_KEY)",
        )
    stripe_customer_id = customer.provider_customer_id
    if not stripe_customer_id:
        try:
            synced = stripe_customer_sync(customer_id=customer.pk)
        except ProviderUnavailable as error:
            raise PaymentError("payment_provider_unavailable", http_status=503, message=str(error)) from error
        except ProviderRejected as error:
            raise PaymentError("third_party_error", message=error.message) from error
        stripe_customer_id = synced.provider_customer_id if synced else ""
    if not stripe_customer_id:
        raise PaymentError("missing_payment_provider_customer", field="base")
    return stripe_customer_id


def _session_create(**params: Any) -> Any:
    options = stripe_provider._options()
    try:
        return stripe.checkout.Session.create(**params, **options)
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as error:
        raise PaymentError("payment_provider_unavailable", http_status=503, message=str(error)) from error
    except stripe.StripeError as error:
        # Lago's third_party_failure: what Stripe said, as a 422.
        raise PaymentError("third_party_error", message=getattr(error, "user_message", None) or str(error)) from error


def invoice_checkout_link(
    *, invoice: Invoice, success_url: str | None = None, extra_metadata: dict[str, str] | None = None
) -> CheckoutLink:
    """A Stripe Checkout page paying what `invoice` still owes (the pay URL the portal, the API
    and e-mails use). Only a finalized invoice not yet paid in full (Lago's
    `invalid_invoice_status_or_payment_status`, 422). A repeat within Stripe's 24 hours of
    idempotency for the same amount due answers the same session."""
    if (
        invoice.status != InvoiceStatus.FINALIZED
        or invoice.payment_status == InvoicePaymentStatus.SUCCEEDED
        or invoice.total_due_amount <= 0
    ):
        raise PaymentError("invalid_invoice_status_or_payment_status", field="base")
    customer = invoice.customer
    stripe_customer_id = _stripe_customer_id(customer)
    amount = stripe_provider.stripe_amount(invoice.total_due_amount, invoice.currency)
    metadata = {
        CHECKOUT_METADATA_KEY: "invoice",
        "invoice_id": str(invoice.pk),
        "invoice_number": invoice.number,
        "external_customer_id": customer.external_id,
        **(extra_metadata or {}),
    }
    session = _session_create(
        mode="payment",
        customer=stripe_customer_id,
        success_url=_success_url(success_url),
        line_items=[
            {
                "quantity": 1,
                "price_data": {
                    "currency": invoice.currency.lower(),
                    "unit_amount": amount,
                    "product_data": {"name": invoice.number or str(invoice.pk)},
                },
            }
        ],
        payment_intent_data={"description": f"Invoice {invoice.number}", "metadata": metadata},
        metadata=metadata,
        idempotency_key=f"tollgate:invoice:{invoice.pk}:checkout:{amount}",
    )
    return CheckoutLink(url=str(session["url"] or ""), session_id=str(session["id"]))


def invoice_payment_url(*, invoice: Invoice, success_url: str | None = None) -> str:
    """The one function other parts call for an invoice's pay link (e-mails, payment requests):
    the Stripe Checkout URL for what the invoice still owes. Raises PaymentError when the invoice
    cannot be paid this way (its `code` says why)."""
    return invoice_checkout_link(invoice=invoice, success_url=success_url).url


def customer_setup_checkout_link(*, customer: Customer, success_url: str | None = None) -> CheckoutLink:
    """Lago's POST /customers/{id}/checkout_url: Stripe Checkout in setup mode, where the customer
    saves a card for later off-session payments (Stripe attaches it to the Stripe customer)."""
    stripe_customer_id = _stripe_customer_id(customer)
    session = _session_create(
        mode="setup",
        customer=stripe_customer_id,
        success_url=_success_url(success_url),
        payment_method_types=["card"],
        metadata={CHECKOUT_METADATA_KEY: "setup", "external_customer_id": customer.external_id},
    )
    return CheckoutLink(url=str(session["url"] or ""), session_id=str(session["id"]))


def checkout_payment_record(*, payment_intent: dict[str, Any], occurred_at: Any = None) -> Payment | None:
    """Stripe says a Checkout PaymentIntent for a Tollgate invoice changed (the webhook path, never
    the page): a success becomes a succeeded Stripe payment of the invoice, once per PaymentIntent;
    anything else is the customer still on the page (a declined card can be retried there) and is
    only logged. Returns the payment, or None."""
    pi_id = str(payment_intent.get("id") or "")
    metadata = payment_intent.get("metadata") or {}
    outcome = stripe_provider.outcome_from_payment_intent(payment_intent)
    if outcome.status != PaymentStatus.SUCCEEDED or not pi_id:
        logger.info("Checkout PaymentIntent %s is %s: nothing recorded", pi_id, payment_intent.get("status"))
        return None
    existing = Payment.objects.filter(provider=PaymentProviderName.STRIPE, provider_payment_id=pi_id).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            invoice = lock_invoice(str(metadata.get("invoice_id") or ""))
            currency = invoice.currency
            if str(payment_intent.get("currency") or "").upper() != currency:
                logger.error(
                    "Checkout PaymentIntent %s is in %s, invoice %s in %s: ignored",
                    pi_id,
                    payment_intent.get("currency"),
                    invoice.pk,
                    currency,
                )
                return None
            minor = int(payment_intent.get("amount_received") or payment_intent.get("amount") or 0)
            if minor <= 0:
                return None
            payment = Payment.objects.create(
                invoice=invoice,
                customer=invoice.customer,
                provider=PaymentProviderName.STRIPE,
                status=PaymentStatus.SUCCEEDED,
                amount=stripe_provider.from_stripe_amount(minor, currency),
                currency=currency,
                attempt=_latest_attempt_number(invoice) + 1,
                trigger=PaymentTrigger.CHECKOUT,
                provider_customer_id=str(payment_intent.get("customer") or ""),
                provider_payment_id=pi_id,
                paid_at=occurred_at or timezone.now(),
            )
            payment_succeeded_in_tx.send(sender=Payment, payment_id=payment.pk)
            _invoice_payment_state_refresh(invoice)
    except IntegrityError:
        # The same event delivered twice at once: the other delivery recorded it.
        return Payment.objects.filter(provider=PaymentProviderName.STRIPE, provider_payment_id=pi_id).first()
    return payment
