"""Signals the wallets send, for the apps to the right (the outbound webhooks app connects to
them). Each is sent INSIDE the transaction that made the change, right after the rows are
written: a receiver can write an outbox row that commits (or rolls back) with the change.
Receivers must not do slow work inline; they schedule it with transaction.on_commit.

kwargs: wallet_id (wallet_*), wallet_transaction_id (wallet_transaction_*).
"""

from django.dispatch import Signal

wallet_created = Signal()
wallet_updated = Signal()
wallet_terminated = Signal()
wallet_transaction_created = Signal()
wallet_transaction_updated = Signal()
# The ongoing balance reached zero (or below) since the last refresh.
wallet_depleted_ongoing_balance = Signal()

WEBHOOK_NAMES = {
    "wallet.created": wallet_created,
    "wallet.updated": wallet_updated,
    "wallet.terminated": wallet_terminated,
    "wallet_transaction.created": wallet_transaction_created,
    "wallet_transaction.updated": wallet_transaction_updated,
    "wallet.depleted_ongoing_balance": wallet_depleted_ongoing_balance,
}
