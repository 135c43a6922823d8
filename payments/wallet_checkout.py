"""Lago's POST /wallet_transactions/{id}/payment_url: a Stripe Checkout link to pay the credit
invoice of a pending purchase of wallet credits (payments.checkout, the one Checkout path: the
purchase settles when Stripe's webhook reports the payment). With no Stripe key configured it
answers a clear 422 instead of a broken link."""

from __future__ import annotations

from customers.models import PaymentProvider
from invoicing.wallets.models import TransactionKind, TransactionStatus, WalletTransaction

from .checkout import invoice_checkout_link
from .errors import PaymentError
from .providers import stripe as stripe_provider


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
    if invoice.customer.payment_provider != PaymentProvider.STRIPE:
        raise PaymentError("missing_payment_provider_customer", field="customer")
    link = invoice_checkout_link(invoice=invoice, extra_metadata={"wallet_transaction_id": str(row.pk)})
    return link.url
