"""Which signal announces which webhook type: the one table to extend.

Each `Announcement` says: when `signal` is sent (inside the transaction of the change, see the
`*_in_tx` signals of the apps to the left), emit `webhook_type` with an object of `object_type`,
rendered by `payload(<the signal's id_kwarg>)`. `when`, if given, filters on the signal's kwargs.

To announce something new (wallets, alerts, ...):
  1. in your app's signals.py, define `my_thing_happened_in_tx = Signal()` and send it from your
     service INSIDE the transaction, once the rows are saved: `my_thing_happened_in_tx.send(
     sender=MyModel, my_thing_id=obj.pk)`. Never send it from on_commit: the outbox row must commit
     (or roll back) with your change.
  2. add a line to ANNOUNCEMENTS below, with a payload function that renders the object with your
     API's serializer (webhooks/payloads.py holds the existing ones).
  3. list the type and an example payload in the README's webhooks section.
The receiver, the outbox row, signing, retries and the admin come for free.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.dispatch import Signal

from customers.signals import customer_saved_in_tx
from invoicing.monitoring import api as monitoring_api
from invoicing.monitoring.signals import alert_triggered_in_tx
from invoicing.signals import (
    credit_note_created_in_tx,
    credit_note_refund_failed_in_tx,
    fee_created_in_tx,
    invoice_deleted_in_tx,
    invoice_drafted_in_tx,
    invoice_finalized_in_tx,
    invoice_one_off_created_in_tx,
    invoice_paid_credit_added_in_tx,
    invoice_payment_dispute_lost_in_tx,
    invoice_payment_status_changed_in_tx,
    invoice_voided_in_tx,
    invoices_payment_overdue_in_tx,
)
from invoicing.wallets import signals as wallet_signals
from payments.signals import (
    invoice_payment_unprovided_in_tx,
    payment_failed_in_tx,
    payment_receipt_created_in_tx,
    payment_request_created_in_tx,
    payment_request_payment_failed_in_tx,
    payment_request_payment_status_changed_in_tx,
    payment_succeeded_in_tx,
)
from plans.signals import (
    feature_deleted_in_tx,
    feature_saved_in_tx,
    plan_entitlements_changed_in_tx,
    subscription_started_in_tx,
    subscription_terminated_in_tx,
)

from . import payloads


@dataclass(frozen=True)
class Announcement:
    signal: Signal
    webhook_type: str
    object_type: str
    id_kwarg: str  # the signal kwarg holding the object's id (or a list of ids: one event each)
    payload: Callable[[Any], dict[str, Any]]
    when: Callable[[Mapping[str, Any]], bool] | None = None


ANNOUNCEMENTS: list[Announcement] = [
    Announcement(
        customer_saved_in_tx, "customer.created", "customer", "customer_id", payloads.customer, lambda kw: kw["created"]
    ),
    Announcement(
        customer_saved_in_tx,
        "customer.updated",
        "customer",
        "customer_id",
        payloads.customer,
        lambda kw: not kw["created"],
    ),
    Announcement(invoice_drafted_in_tx, "invoice.drafted", "invoice", "invoice_id", payloads.invoice),
    Announcement(invoice_finalized_in_tx, "invoice.created", "invoice", "invoice_id", payloads.invoice),
    Announcement(invoice_one_off_created_in_tx, "invoice.one_off_created", "invoice", "invoice_id", payloads.invoice),
    Announcement(invoice_voided_in_tx, "invoice.voided", "invoice", "invoice_id", payloads.invoice),
    # Lago's Invoices::PaidCreditService / FinalizeOpenCreditService: a credit invoice is announced
    # as paid_credit_added when it is finalized (at once, or once an open one is paid).
    Announcement(
        invoice_paid_credit_added_in_tx, "invoice.paid_credit_added", "invoice", "invoice_id", payloads.invoice
    ),
    Announcement(
        invoice_payment_status_changed_in_tx,
        "invoice.payment_status_updated",
        "invoice",
        "invoice_id",
        payloads.invoice,
    ),
    Announcement(invoice_deleted_in_tx, "invoice.deleted", "invoice", "invoice_id", payloads.invoice),
    Announcement(
        invoice_payment_dispute_lost_in_tx,
        "invoice.payment_dispute_lost",
        "payment_dispute_lost",
        "invoice_id",
        payloads.payment_dispute_lost,
    ),
    Announcement(invoices_payment_overdue_in_tx, "invoice.payment_overdue", "invoice", "invoice_ids", payloads.invoice),
    Announcement(fee_created_in_tx, "fee.created", "fee", "fee_id", payloads.fee),
    Announcement(
        credit_note_created_in_tx, "credit_note.created", "credit_note", "credit_note_id", payloads.credit_note
    ),
    Announcement(
        credit_note_refund_failed_in_tx,
        "credit_note.refund_failure",
        "credit_note",
        "credit_note_id",
        payloads.credit_note,
    ),
    Announcement(
        subscription_started_in_tx, "subscription.started", "subscription", "subscription_id", payloads.subscription
    ),
    Announcement(
        subscription_terminated_in_tx,
        "subscription.terminated",
        "subscription",
        "subscription_id",
        payloads.subscription,
    ),
    Announcement(wallet_signals.wallet_created, "wallet.created", "wallet", "wallet_id", payloads.wallet),
    Announcement(wallet_signals.wallet_updated, "wallet.updated", "wallet", "wallet_id", payloads.wallet),
    Announcement(wallet_signals.wallet_terminated, "wallet.terminated", "wallet", "wallet_id", payloads.wallet),
    Announcement(
        wallet_signals.wallet_depleted_ongoing_balance,
        "wallet.depleted_ongoing_balance",
        "wallet",
        "wallet_id",
        payloads.wallet,
    ),
    Announcement(
        wallet_signals.wallet_transaction_created,
        "wallet_transaction.created",
        "wallet_transaction",
        "wallet_transaction_id",
        payloads.wallet_transaction,
    ),
    Announcement(
        wallet_signals.wallet_transaction_updated,
        "wallet_transaction.updated",
        "wallet_transaction",
        "wallet_transaction_id",
        payloads.wallet_transaction,
    ),
    Announcement(
        alert_triggered_in_tx,
        "alert.triggered",
        "triggered_alert",
        "triggered_alert_id",
        monitoring_api.triggered_alert_payload,
    ),
    # Lago's app/services/webhooks/features/*_service.rb (FeatureSerializer) and plans/updated.
    Announcement(
        feature_saved_in_tx, "feature.created", "feature", "feature_id", payloads.feature, lambda kw: kw["created"]
    ),
    Announcement(
        feature_saved_in_tx,
        "feature.updated",
        "feature",
        "feature_id",
        payloads.feature,
        lambda kw: not kw["created"],
    ),
    Announcement(feature_deleted_in_tx, "feature.deleted", "feature", "feature_id", payloads.feature),
    Announcement(plan_entitlements_changed_in_tx, "plan.updated", "plan", "plan_ids", payloads.plan),
    Announcement(payment_succeeded_in_tx, "payment.succeeded", "payment", "payment_id", payloads.payment),
    Announcement(payment_failed_in_tx, "payment.failed", "payment", "payment_id", payloads.payment),
    Announcement(
        payment_receipt_created_in_tx,
        "payment_receipt.created",
        "payment_receipt",
        "payment_receipt_id",
        payloads.payment_receipt,
    ),
    Announcement(
        payment_request_created_in_tx,
        "payment_request.created",
        "payment_request",
        "payment_request_id",
        payloads.payment_request,
    ),
    Announcement(
        payment_request_payment_status_changed_in_tx,
        "payment_request.payment_status_updated",
        "payment_request",
        "payment_request_id",
        payloads.payment_request,
    ),
    Announcement(
        payment_request_payment_failed_in_tx,
        "payment_request.payment_failure",
        "payment_provider_payment_request_payment_error",
        "payment_id",
        payloads.payment_request_payment_failure,
    ),
    Announcement(
        payment_failed_in_tx,
        "invoice.payment_failure",
        "payment_provider_invoice_payment_error",
        "payment_id",
        payloads.invoice_payment_failure,
    ),
    Announcement(
        invoice_payment_unprovided_in_tx,
        "invoice.payment_failure",
        "payment_provider_invoice_payment_error",
        "invoice_id",
        payloads.invoice_payment_failure_without_provider,
    ),
]

# Types emitted by periodic tasks (webhooks.tasks) or by a signal sent outside any transaction
# (metrics.signals.events_rejected -> event.error: webhooks.digests).
SCHEDULED_TYPES = ["subscription.termination_alert", "event.error", "events.errors"]


def webhook_types() -> list[str]:
    """Every type an endpoint may filter on (`event_types`)."""
    seen = dict.fromkeys([announcement.webhook_type for announcement in ANNOUNCEMENTS] + SCHEDULED_TYPES)
    return list(seen)
