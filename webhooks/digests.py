"""The webhook types no in-transaction signal announces: event.error (a conflicting duplicate,
refused, so nothing was stored to share a transaction with) and the hourly events.errors digest
of stored events that bill nothing (unknown code, no matching subscription, missing or invalid
aggregated field, too late for a correction)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from invoicing.corrections.selectors import too_late_events
from metrics import selectors as metric_selectors
from metrics.models import BillableMetric, Event
from plans.models import Subscription

from . import services
from .models import WebhookDelivery

EVENTS_ERRORS = "events.errors"
DIGEST_LIMIT = 1000  # transaction ids per list


def announce_rejected_events(sender: Any, *, rejected: list[tuple[dict[str, Any], dict[str, Any]]], **_: Any) -> None:
    """metrics.signals.events_rejected -> one event.error per refused event."""
    for event, details in rejected:
        errors = "; ".join(f"{field}: {', '.join(codes)}" for field, codes in details.items())
        with transaction.atomic():
            services.webhook_emit(
                webhook_type="event.error",
                object_type="event_error",
                object_id=event["transaction_id"],
                payload={"error": errors, "status": 422, "input_params": event},
            )


def events_errors_emit(*, now: datetime | None = None) -> bool:
    """The digest of the events received in the last full hour that bill nothing; emitted once per
    hour (object_id: the hour), and only when there is something to report."""
    now = now or timezone.now()
    to_datetime = now.replace(minute=0, second=0, microsecond=0)
    from_datetime = to_datetime - timedelta(hours=1)
    hour = from_datetime.isoformat()
    if WebhookDelivery.objects.filter(webhook_type=EVENTS_ERRORS, object_id=hour).exists():
        return False
    window = Event.objects.filter(created_at__gte=from_datetime, created_at__lt=to_datetime)
    live_codes = BillableMetric.live.values_list("code", flat=True)
    invalid_code = list(window.exclude(code__in=live_codes).values_list("transaction_id", flat=True)[:DIGEST_LIMIT])
    known = Subscription.objects.values_list("external_id", flat=True)
    no_subscription = list(
        metric_selectors.unmatched_events(known_subscription_ids=known, queryset=window)
        .filter(code__in=live_codes)
        .values_list("transaction_id", flat=True)[:DIGEST_LIMIT]
    )
    missing_property: list[str] = []
    for metric in BillableMetric.live.all():
        missing_property += (
            metric_selectors.invalid_events(metric)
            .filter(created_at__gte=from_datetime, created_at__lt=to_datetime)
            .values_list("transaction_id", flat=True)[:DIGEST_LIMIT]
        )
    # Late usage for a period that ended longer ago than the organization's window (issue 15).
    too_late = too_late_events(received_from=from_datetime, received_to=to_datetime, limit=DIGEST_LIMIT)
    if not (invalid_code or no_subscription or missing_property or too_late):
        return False
    with transaction.atomic():
        services.webhook_emit(
            webhook_type=EVENTS_ERRORS,
            object_type="events_errors",
            object_id=hour,
            payload={
                "invalid_code": invalid_code,
                "no_matching_subscription": no_subscription,
                "missing_aggregation_property": missing_property[:DIGEST_LIMIT],
                "too_late_for_correction": too_late,
                "from_datetime": from_datetime,
                "to_datetime": to_datetime,
            },
        )
    return True
