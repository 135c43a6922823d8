"""subscription.termination_alert, which no change announces: a daily look at the subscriptions
whose ending_at is 45 or 15 days away (Lago's two alerts)."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from plans.models import Subscription, SubscriptionStatus

from . import payloads, services
from .models import WebhookDelivery

ALERT_DAYS = (45, 15)
TERMINATION_ALERT = "subscription.termination_alert"


def termination_alerts_emit(*, now: datetime | None = None) -> int:
    """Emit one alert per subscription ending in ALERT_DAYS days (UTC dates); a second run the same
    day emits nothing again. Returns how many subscriptions were announced."""
    now = now or timezone.now()
    announced = 0
    for days in ALERT_DAYS:
        day = (now + timedelta(days=days)).date()
        due = Subscription.objects.filter(status=SubscriptionStatus.ACTIVE, ending_at__date=day).values_list(
            "pk", flat=True
        )
        for subscription_id in due:
            # One alert per subscription, ending date and lead time, however often this runs: the
            # delivery's unique (event_key, endpoint) decides; the counts only report it.
            key = f"{TERMINATION_ALERT}:{subscription_id}:{day.isoformat()}:{days}"
            deliveries = WebhookDelivery.objects.filter(event_key=key)
            before = deliveries.count()
            with transaction.atomic():
                services.webhook_emit(
                    webhook_type=TERMINATION_ALERT,
                    object_type="subscription",
                    object_id=subscription_id,
                    payload=functools.partial(payloads.subscription, subscription_id),
                    event_key=key,
                )
            announced += 1 if deliveries.count() > before else 0
    return announced
