"""Celery tasks of webhooks: thin, idempotent wrappers around services."""

from __future__ import annotations

from celery import shared_task

from . import alerts, digests, services


@shared_task(name="webhooks.tasks.deliver_endpoint", ignore_result=True)
def deliver_endpoint(endpoint_id: str) -> int:
    """Send one endpoint's due deliveries in order (a second task for it finds it locked)."""
    return services.endpoint_drain(endpoint_id=endpoint_id)


@shared_task(name="webhooks.tasks.sweep_deliveries", ignore_result=True)
def sweep_deliveries() -> int:
    """Periodic: pending deliveries whose task was lost get one again."""
    return services.deliveries_sweep()


@shared_task(name="webhooks.tasks.announce_termination_alerts", ignore_result=True)
def announce_termination_alerts() -> int:
    """Periodic: subscription.termination_alert 45 and 15 days before a subscription's ending_at."""
    return alerts.termination_alerts_emit()


@shared_task(name="webhooks.tasks.announce_events_errors", ignore_result=True)
def announce_events_errors() -> bool:
    """Periodic: the events.errors digest of the last full hour."""
    return digests.events_errors_emit()
