"""Signals the invoicing app sends; apps to the right (payments, webhooks) connect receivers."""

from django.dispatch import Signal

# Sent after commit when an invoice is finalized: kwargs invoice_id.
invoice_finalized = Signal()

# Sent after commit when a credit note asks for money back (refund_amount > 0): kwargs
# credit_note_id. Payments refunds it (Stripe) or leaves it for finance to mark paid (manual), and
# reports the outcome with invoicing.credit_note_refunds.credit_note_refund_status_update.
credit_note_refund_requested = Signal()

# --- Sent INSIDE the transaction of the change (outbox writers: webhooks) ---------------------
# Receivers write rows in the same transaction (so they commit or roll back with the change) and
# never do I/O; each is sent once the rows it names are saved.
# A subscription invoice was created as a draft (grace period): kwargs invoice_id.
invoice_drafted_in_tx = Signal()
# An invoice was finalized (at creation or from a draft; not a one-off): kwargs invoice_id.
invoice_finalized_in_tx = Signal()
# A one-off invoice (add-ons) was created, finalized: kwargs invoice_id.
invoice_one_off_created_in_tx = Signal()
# A finalized invoice was voided: kwargs invoice_id.
invoice_voided_in_tx = Signal()
# An invoice's payment_status changed (payments or the API's PUT): kwargs invoice_id.
invoice_payment_status_changed_in_tx = Signal()
# Invoices became overdue (payments' daily flagging): kwargs invoice_ids.
invoices_payment_overdue_in_tx = Signal()
# A pay-in-advance fee was created (with or without an invoice): kwargs fee_id.
fee_created_in_tx = Signal()
# A credit note was issued: kwargs credit_note_id.
credit_note_created_in_tx = Signal()
# A credit note's refund failed at the provider: kwargs credit_note_id.
credit_note_refund_failed_in_tx = Signal()
# A draft was deleted (DELETE /invoices/{id}): kwargs invoice_id.
invoice_deleted_in_tx = Signal()
# An issued invoice lost its payment dispute (POST /invoices/{id}/lose_dispute): kwargs invoice_id.
invoice_payment_dispute_lost_in_tx = Signal()
