"""Signals the metrics app sends; apps to its right connect receivers (the street stays one-way)."""

from django.dispatch import Signal

# Sent after commit when a billable metric is deleted (soft): kwargs billable_metric_id.
# Plans soft-deletes the charges priced on it, as Lago does.
billable_metric_deleted = Signal()

# Sent by `selectors.unmatched_events` to learn which external subscription ids exist, since
# subscriptions live to the right (plans). Each receiver returns an iterable or a values_list
# queryset of external ids. With no receiver connected, only unknown codes count as unmatched.
known_subscription_ids_requested = Signal()

# Sent by ingestion, once per batch, to learn which of the batch's metric codes are priced by a
# pay-in-advance charge (charges live to the right, in plans): kwargs `codes` (a set of codes).
# Each receiver returns an iterable of those codes. With no receiver connected, nothing is asked
# and `events_stored` is never sent.
pay_in_advance_codes_requested = Signal()

# Sent after commit when ingestion stored new events (exact replays excluded) whose code is
# priced by a pay-in-advance charge: kwargs `events`, a list of (external_subscription_id, code,
# transaction_id). Only those events are listed; a batch without any sends nothing. Invoicing
# prices each of them right away (a fee, and an invoice when the charge is invoiceable).
events_stored = Signal()
