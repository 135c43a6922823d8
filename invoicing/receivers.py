"""What invoicing does when plans announces a subscription's start or end, and when metrics
announces events of pay-in-advance charges or an ingestion batch (connected in ready()). Thin: each hands the billing
to a task (run inline when Celery is eager)."""

from __future__ import annotations

from typing import Any


def bill_started_subscription(sender: Any, *, subscription_id: Any, **kwargs: Any) -> None:
    """A pay-in-advance plan bills its first period when it starts (reason subscription_starting)."""
    from .tasks import bill_subscription_start

    bill_subscription_start.delay(str(subscription_id))


def bill_terminated_subscription(sender: Any, *, subscription_id: Any, **kwargs: Any) -> None:
    """The final partial period (subscription_terminating; upgrading when a plan upgrade ended it)."""
    from .tasks import bill_subscription_end

    bill_subscription_end.delay(str(subscription_id))


def bill_pay_in_advance_events(sender: Any, *, events: Any, **kwargs: Any) -> None:
    """New events that a pay-in-advance charge prices: one task each (metrics sends this after
    commit, so the task always finds its event)."""
    from .tasks import bill_pay_in_advance_event

    for external_subscription_id, code, transaction_id in events:
        bill_pay_in_advance_event.delay(external_subscription_id, code, transaction_id)


def refresh_wallets_after_ingestion(sender: Any, *, external_subscription_ids: Any, **kwargs: Any) -> None:
    """An ingestion batch committed: the customers of its subscriptions that have active wallets
    get their ongoing balance refreshed in a task (one indexed query here, none per event; no
    task at all when no wallet is concerned)."""
    from .wallets.selectors import customers_with_wallets_for_subscriptions
    from .wallets.tasks import refresh_ongoing_balances_after_ingestion

    customer_ids = customers_with_wallets_for_subscriptions(external_subscription_ids)
    if customer_ids:
        refresh_ongoing_balances_after_ingestion.delay([str(pk) for pk in customer_ids])


def usage_activity_record(sender: Any, *, external_subscription_ids: Any, **kwargs: Any) -> None:
    """An ingestion batch committed: the subscriptions with alerts or usage thresholds among
    its subscriptions get one evaluation each (one query for the whole batch)."""
    from .monitoring.evaluation import activities_record_for_external_ids

    activities_record_for_external_ids(external_subscription_ids=external_subscription_ids)
