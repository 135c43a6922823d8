"""Signals the customers app sends; apps to the right connect receivers in their ready().

customer_saved and customer_deleted are sent after the transaction that changed the customer has
committed; customer_saved_in_tx inside it (for outbox writers, see below).
"""

from django.dispatch import Signal

# A customer was created or updated (API upsert, admin). kwargs:
#   customer_id: the Customer's primary key (a UUID)
#   created: True when this save created the customer
#   sync_with_provider: Lago's billing_configuration.sync_with_provider as the caller sent it
#       (True, False, or None when absent); payments creates the provider's customer unless False
#   tax_codes: Lago's `tax_codes` as the caller sent them (a list of codes, or None when absent:
#       then the customer's taxes are left as they are); plans applies them
customer_saved = Signal()

# A customer was soft-deleted (deleted_at set). kwargs:
#   customer_id: the Customer's primary key
# Apps that hold running things for the customer (subscriptions, drafts) end them in a receiver.
customer_deleted = Signal()

# --- Sent INSIDE the transaction of the change (outbox writers: webhooks) ---------------------
# Receivers write rows in the same transaction (so they commit or roll back with the change) and
# never do I/O. Sent after the customer row is saved. kwargs: customer_id, created.
customer_saved_in_tx = Signal()
