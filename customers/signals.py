"""Signals the customers app sends; apps to the right connect receivers in their ready()."""

from django.dispatch import Signal

# Sent after commit when a customer is created or updated: kwargs customer_id.
customer_saved = Signal()
