"""Signals the plans app sends; invoicing connects receivers to bill what they start or end."""

from django.dispatch import Signal

# Sent after commit when a subscription becomes active (now or when its start date is reached):
# kwargs subscription_id. Invoicing bills a pay-in-advance plan's first period on it.
subscription_started = Signal()

# Sent after commit when a subscription is terminated: kwargs subscription_id,
# upgraded_to_id (the new subscription's id on an upgrade, else None) and downgraded_to_id (the
# new subscription's id when a downgrade took effect, else None). Invoicing bills the final
# partial period (reason subscription_terminating, or upgrading). A downgrade terminates the old
# subscription exactly at its billing period's end (terminated_at == the period's to_datetime),
# so that last period is a full one. Not sent when a pending subscription is canceled.
subscription_terminated = Signal()

# --- Sent INSIDE the transaction of the change (outbox writers: webhooks) ---------------------
# Receivers write rows in the same transaction (so they commit or roll back with the change) and
# never do I/O. kwargs: subscription_id.
# A subscription became active (also for a back-dated start, as Lago announces it).
subscription_started_in_tx = Signal()
# A subscription was terminated (not sent for a pending one that is canceled).
subscription_terminated_in_tx = Signal()

# Features and entitlements (plans.entitlements.services), inside the transaction too.
# A feature was created (created=True) or changed, its privileges included: kwargs feature_id,
# created.
feature_saved_in_tx = Signal()
# A feature is about to be deleted, in the transaction that deletes it (so its announcement can
# still render it): kwargs feature_id.
feature_deleted_in_tx = Signal()
# What plans grant changed (their entitlements, or a feature or privilege they grant): kwargs
# plan_ids (a list, one announcement each).
plan_entitlements_changed_in_tx = Signal()
