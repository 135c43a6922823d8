"""Signals the metrics app sends; apps to its right connect receivers (the street stays one-way)."""

from django.dispatch import Signal

# Sent after commit when a billable metric is deleted (soft): kwargs billable_metric_id.
# Plans soft-deletes the charges priced on it, as Lago does.
billable_metric_deleted = Signal()

# Sent by `selectors.unmatched_events` to learn which external subscription ids exist, since
# subscriptions live to the right (plans). Each receiver returns an iterable or a values_list
# queryset of external ids. With no receiver connected, only unknown codes count as unmatched.
# Sent with `external_customer_id`, it asks for that customer's subscriptions only (the events
# browser's customer filter).
known_subscription_ids_requested = Signal()

# Sent after commit when ingestion stored new events (exact replays excluded) whose code is a
# live metric's with `has_pay_in_advance_charges` (a flag plans keeps; ingestion reads it inside
# its INSERT statement, at no extra round trip): kwargs `events`, a list of
# (external_subscription_id, code, transaction_id). Only those events are listed; a batch without
# any sends nothing. Invoicing prices each of them right away (a fee, and an invoice when the
# charge is invoiceable); its periodic sweep bills any whose announcement was lost.
events_stored = Signal()

# Sent after commit when an ingestion batch (POST /events, /events/batch) stored new events (exact
# replays excluded): kwargs `external_subscription_ids`, the batch's distinct subscriptions (one
# signal per batch, never one per event). Invoicing refreshes the ongoing balance of those
# customers' wallets, and evaluates the usage alerts and progressive-billing thresholds it watches.
events_batch_stored = Signal()

# Sent when ingestion refused events that conflict with stored ones (same transaction_id and
# subscription, another payload): kwargs `rejected`, a list of (event as sent: a dict of
# transaction_id, external_subscription_id, code, timestamp, properties; its error_details).
# Nothing was stored, so there is no transaction to share: sent after the rollback. Webhooks
# announces each as event.error.
events_rejected = Signal()

# Sent by the rollup fold (metrics.rollups) to learn which event property keys a metric's charges
# group by (charges live to the right, in plans): kwargs `metric`. Each receiver returns an
# iterable of keys. The buckets keep the values of those keys and of the metric's filter keys;
# a read filtering or grouping on any other key takes the raw events.
rollup_keys_requested = Signal()
