"""Celery tasks of audit: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="audit.tasks.prune_api_logs", ignore_result=True)
def prune_api_logs() -> int:
    """Periodic: API logs past their retention are deleted in batches."""
    return services.api_logs_prune()
