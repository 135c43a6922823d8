"""Receivers for the signals payments listens to, connected in PaymentsConfig.ready():
customers' `customer_saved`, invoicing's `invoice_finalized` and `credit_note_refund_requested`,
and dj-stripe's webhook signals."""

from __future__ import annotations

from typing import Any

from billing_project.after_commit import delay_after_commit
from customers.models import Customer, PaymentProvider

from .models import PaymentTrigger

# The Stripe events that move a payment; dj-stripe verifies and stores them, then signals.
HANDLED_STRIPE_EVENTS = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.requires_action",
    "payment_intent.processing",
    "payment_intent.canceled",
)
# The Stripe events that settle a refund Stripe answered `pending` (localstripe refunds at once).
HANDLED_STRIPE_REFUND_EVENTS = ("refund.updated", "refund.failed", "charge.refund.updated")


def on_customer_saved(sender: Any, customer_id: Any, sync_with_provider: bool | None = None, **kwargs: Any) -> None:
    """A `stripe` customer gets its Stripe customer, after commit, in a task. Only an explicit
    sync_with_provider=False (Lago's billing_configuration) limits this to syncing an existing
    link (provider_customer_id); absent or None means create."""
    from .tasks import sync_stripe_customer

    if not Customer.objects.filter(pk=customer_id, payment_provider=PaymentProvider.STRIPE).exists():
        return
    customer_id_str = str(customer_id)
    create = sync_with_provider is not False
    delay_after_commit(sync_stripe_customer, customer_id_str, create)


def on_invoice_finalized(sender: Any, invoice_id: Any, **kwargs: Any) -> None:
    """Collect what a finalized invoice owes: attempt 1, after commit, in a task."""
    from .tasks import collect_invoice_payment

    invoice_id_str = str(invoice_id)
    delay_after_commit(collect_invoice_payment, invoice_id_str, PaymentTrigger.FINALIZATION, 0)


def on_stripe_payment_intent_event(sender: Any, event: Any, **kwargs: Any) -> None:
    """dj-stripe received a signature-verified PaymentIntent event (stored once per event id, so a
    re-delivered event does not reach here twice); apply it inside dj-stripe's transaction, so a
    failure answers 500 and Stripe delivers the event again."""
    from .services import payment_intent_event_apply

    payment_intent = (event.data or {}).get("object") or {}
    if payment_intent.get("object") != "payment_intent":
        return
    payment_intent_event_apply(payment_intent=payment_intent, occurred_at=event.created)


def on_credit_note_refund_requested(sender: Any, credit_note_id: Any, **kwargs: Any) -> None:
    """Give a credit note's refund back (Stripe) or leave it to finance (manual): in a task,
    after commit (invoicing sends this signal once its transaction committed)."""
    from .tasks import refund_credit_note

    credit_note_id_str = str(credit_note_id)
    delay_after_commit(refund_credit_note, credit_note_id_str)


def on_stripe_refund_event(sender: Any, event: Any, **kwargs: Any) -> None:
    """dj-stripe received a signature-verified refund event: apply it inside dj-stripe's
    transaction (a failure answers 500 and Stripe delivers it again)."""
    from .refunds import refund_event_apply

    refund = (event.data or {}).get("object") or {}
    if refund.get("object") != "refund":
        return
    refund_event_apply(refund=refund)
