"""Signals the invoicing app sends; apps to the right (payments, webhooks) connect receivers."""

from django.dispatch import Signal

# Sent after commit when an invoice is finalized: kwargs invoice_id.
invoice_finalized = Signal()
