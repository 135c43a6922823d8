"""Row locks of the plans app's aggregates. Order: the customer first (customers.locks), then
its subscriptions, then invoicing's rows."""

from __future__ import annotations

from typing import Any

from .models import Subscription


def lock_subscription(subscription: Subscription | Any) -> Subscription:
    """The subscription's row alone, locked until commit (joined rows are only read)."""
    pk = subscription.pk if isinstance(subscription, Subscription) else subscription
    return Subscription.objects.select_for_update(of=("self",)).select_related("customer", "plan").get(pk=pk)
