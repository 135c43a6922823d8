"""Progressive billing (placeholder until usage thresholds land)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q

from plans.models import Subscription


def watched_subscriptions_q() -> Q:
    return Q(pk__in=[])


def has_thresholds(subscription: Subscription) -> bool:
    return False


def progressive_billing_check(*, subscription: Subscription, figures: Any, now: datetime) -> list[Any]:
    return []
