"""API log retention: rows older than TOLLGATE_API_LOG_RETENTION_DAYS go, in bounded batches."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import ApiLog

PRUNE_BATCH = 5_000
PRUNE_MAX_BATCHES = 200  # one run deletes at most a million rows; the next run goes on


def api_logs_prune(
    *, now: datetime | None = None, batch: int = PRUNE_BATCH, max_batches: int = PRUNE_MAX_BATCHES
) -> int:
    """Delete API logs logged before the retention window, `batch` rows per transaction (short
    locks, bounded WAL per statement). Answers how many were deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.TOLLGATE_API_LOG_RETENTION_DAYS)
    deleted = 0
    for _ in range(max_batches):
        with transaction.atomic():
            ids = list(ApiLog.objects.filter(logged_at__lt=cutoff).order_by("id").values_list("id", flat=True)[:batch])
            if not ids:
                break
            ApiLog.objects.filter(id__in=ids).delete()
        deleted += len(ids)
        if len(ids) < batch:
            break
    return deleted
