"""Lago's POST /wallet_transactions/{id}/payment_url: a Stripe Checkout link to pay the credit
invoice of a pending purchase of wallet credits. Payments owns the providers, so the route is
here; with no Stripe key configured it answers a clear 422 instead of a broken link."""

from __future__ import annotations

from typing import Any

import stripe
from django.conf import settings

from customers.models import PaymentProvider
from invoicing.wallets.models import TransactionKind, TransactionStatus, WalletTransaction

from .errors import PaymentError
from .providers import stripe as stripe_provider
from .services import stripe_customer_sync


def wallet_transaction_payment_url(*, wallet_transaction: WalletTransaction) -> str:
    row = wallet_transaction
    if (
        row.transaction_status != TransactionKind.PURCHASED
        or row.status != TransactionStatus.PENDING
        or row.invoice_id is None
    ):
        raise PaymentError("invalid_status", http_status=405)
    if not stripe_provider.is_configured():
        raise PaymentError(
            "payment_provider_not_configured",
            message="No Stripe secret key is configured (STRIPE_TEST_SECRET_KEY or STRIPE_LIVE_SECRET_KEY)",
        )
    invoice = row.invoice
    assert invoice is not None
    customer = invoice.customer
    if customer.payment_provider != PaymentProvider.STRIPE:
        raise PaymentError("missing_payment_provider_customer", field="customer")
    stripe_customer_id = customer.provider_customer_id
    if not stripe_customer_id:
        synced = stripe_customer_sync(customer_id=customer.pk)
        stripe_customer_id = synced.provider_customer_id if synced else ""
    options: dict[str, Any] = stripe_provider._options()
    success_url = getattr(settings, "TOLLGATE_CHECKOUT_SUCCESS_URL", "") or "https://example.com/success"
    if stripe_customer_id:
        options["customer"] = stripe_customer_id
    session = stripe.checkout.Session.create(
        mode="payment",
        success_url=success_url,
        line_items=[
            {
                "quantity": 1,
                "price_data": {
                    "currency": invoice.currency.lower(),
                    "unit_amount": stripe_provider.stripe_amount(invoice.total_due_amount, invoice.currency),
                    "product_data": {"name": f"Prepaid credits {invoice.number}"},
                },
            }
        ],
        payment_intent_data={
            "metadata": {"invoice_id": str(invoice.pk), "wallet_transaction_id": str(row.pk)},
        },
        idempotency_key=f"tollgate:wallet_transaction:{row.pk}:checkout",
        **options,
    )
    return str(session.url or "")
