"""Celery tasks of the plans app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from . import subscriptions


@shared_task(name="plans.tasks.activate_due_subscriptions")
def activate_due_subscriptions() -> dict[str, int]:
    """Start pending subscriptions whose date arrived, end those whose ending_at passed, and
    swap downgrades whose period ended. Runs at :05, before invoicing bills at :10."""
    return subscriptions.subscriptions_activate_due()
