"""Signals the payments app sends; apps to its right (webhooks) connect receivers.

Sent INSIDE the transaction of the change: receivers write rows in the same transaction (outbox)
and never do I/O.
"""

from django.dispatch import Signal

# A payment succeeded (manual payment recorded, provider confirmed): kwargs payment_id.
payment_succeeded_in_tx = Signal()
# A provider payment attempt failed: kwargs payment_id.
payment_failed_in_tx = Signal()
# A payment receipt was issued (a payment succeeded): kwargs payment_receipt_id.
payment_receipt_created_in_tx = Signal()
# A payment request was created (API or dunning step): kwargs payment_request_id.
payment_request_created_in_tx = Signal()
# A payment request's payment_status changed: kwargs payment_request_id.
payment_request_payment_status_changed_in_tx = Signal()
# A card retry a payment request started failed: kwargs payment_request_id, payment_id.
payment_request_payment_failed_in_tx = Signal()
