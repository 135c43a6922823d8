"""Signals the invoicing app sends; apps to the right (payments, webhooks) connect receivers."""

from django.dispatch import Signal

# Sent after commit when an invoice is finalized: kwargs invoice_id.
invoice_finalized = Signal()

# Sent after commit when a credit note asks for money back (refund_amount > 0): kwargs
# credit_note_id. Payments refunds it (Stripe) or leaves it for finance to mark paid (manual), and
# reports the outcome with invoicing.credit_note_refunds.credit_note_refund_status_update.
credit_note_refund_requested = Signal()
