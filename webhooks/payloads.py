"""The object of each delivery, rendered by the same serializer the API answers with (one
serialization, not a copy). Each function takes the id a signal carries and returns the object;
webhooks sits rightmost, so it may import every app's API serializers."""

from __future__ import annotations

from typing import Any

from customers.api.serializers import serialize_customer
from customers.models import Customer, Organization
from invoicing.api import queries as invoice_queries
from invoicing.api.credit_notes import credit_notes_in_full, serialize_credit_note
from invoicing.api.serializers import InvoiceContext, serialize_fee, serialize_invoice
from invoicing.models import Invoice
from invoicing.wallets.api import serialize_transaction, serialize_wallet
from invoicing.wallets.models import Wallet, WalletTransaction
from payments.api.serializers import serialize_payment
from payments.models import Payment
from plans import selectors as plan_selectors
from plans.api.serializers import SubscriptionContext, serialize_plan, serialize_subscription
from plans.entitlements.models import Feature
from plans.entitlements.services import serialize_feature
from plans.models import Subscription


def customer(customer_id: Any) -> dict[str, Any]:
    return serialize_customer(Customer.objects.get(pk=customer_id), Organization.current())


def invoice(invoice_id: Any) -> dict[str, Any]:
    row = invoice_queries.invoices_in_full().get(pk=invoice_id)
    return serialize_invoice(row, InvoiceContext(), full=True)


def fee(fee_id: Any) -> dict[str, Any]:
    row = invoice_queries.fees_for_list().get(pk=fee_id)
    return serialize_fee(row, row.invoice)


def credit_note(credit_note_id: Any) -> dict[str, Any]:
    return serialize_credit_note(credit_notes_in_full().get(pk=credit_note_id), InvoiceContext())


def subscription(subscription_id: Any) -> dict[str, Any]:
    row = Subscription.objects.select_related("customer", "plan", "previous_subscription__plan").get(pk=subscription_id)
    return serialize_subscription(row, SubscriptionContext())


def payment(payment_id: Any) -> dict[str, Any]:
    return serialize_payment(Payment.objects.select_related("invoice", "customer").get(pk=payment_id))


def invoice_payment_failure(payment_id: Any) -> dict[str, Any]:
    """Lago's `payment_provider_invoice_payment_error` object: which invoice a provider failed to
    collect, and what the provider said."""
    row = Payment.objects.select_related("invoice", "customer").get(pk=payment_id)
    return {
        "lago_invoice_id": str(row.invoice_id),
        "lago_customer_id": str(row.customer_id),
        "external_customer_id": row.customer.external_id,
        "provider_customer_id": row.provider_customer_id or None,
        "payment_provider": row.provider,
        "payment_provider_code": row.provider,
        "provider_error": {"message": row.failure_reason or "", "error_code": row.failure_code or ""},
    }


def payment_dispute_lost(invoice_id: Any) -> dict[str, Any]:
    """Lago's `payment_dispute_lost` object: the invoice whose disputed payment was lost."""
    return {"invoice": invoice(invoice_id)}


def invoice_payment_failure_without_provider(invoice_id: Any) -> dict[str, Any]:
    """Lago's `invoice.payment_failure` for a retry asked of an invoice whose customer has no
    payment provider (Invoices::Payments::RetryService: `customer_must_have_payment_provider`)."""
    row = Invoice.objects.select_related("customer").get(pk=invoice_id)
    return {
        "lago_invoice_id": str(row.pk),
        "lago_customer_id": str(row.customer_id),
        "external_customer_id": row.customer.external_id,
        "provider_customer_id": None,
        "payment_provider": None,
        "payment_provider_code": None,
        "provider_error": {"error_code": "customer_must_have_payment_provider", "message": None},
    }


def wallet(wallet_id: Any) -> dict[str, Any]:
    row = Wallet.objects.select_related("customer").prefetch_related("recurring_transaction_rules").get(pk=wallet_id)
    return serialize_wallet(row)


def wallet_transaction(wallet_transaction_id: Any) -> dict[str, Any]:
    return serialize_transaction(WalletTransaction.objects.select_related("wallet").get(pk=wallet_transaction_id))


def feature(feature_id: Any) -> dict[str, Any]:
    return serialize_feature(Feature.objects.prefetch_related("privileges").get(pk=feature_id))


def plan(plan_id: Any) -> dict[str, Any]:
    return serialize_plan(plan_selectors.plans_with_charges().get(pk=plan_id))


def payment_receipt(payment_receipt_id: Any) -> dict[str, Any]:
    from payments.api.receipts import receipts_list, serialize_payment_receipt

    return serialize_payment_receipt(receipts_list().get(pk=payment_receipt_id))


def payment_request(payment_request_id: Any) -> dict[str, Any]:
    from payments.api.payment_requests import payment_request_payload

    return payment_request_payload(payment_request_id)


def payment_request_payment_failure(payment_id: Any) -> dict[str, Any]:
    from payments.api.payment_requests import payment_request_failure_payload

    return payment_request_failure_payload(payment_id)
