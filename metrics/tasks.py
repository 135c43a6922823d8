"""Celery tasks of the metrics app: thin wrappers around services."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from .rollups import usage_rollups_fold


@shared_task(name="metrics.tasks.fold_usage_rollups")
def fold_usage_rollups() -> dict[str, Any]:
    """Fold closed hours of events into the usage rollups (skips when a fold is running)."""
    return usage_rollups_fold().as_dict()
