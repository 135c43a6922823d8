"""What the plans app does when apps to its left announce something (connected in ready())."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from . import services
from .models import Subscription


def retire_charges_of_deleted_metric(sender: Any, *, billable_metric_id: Any, **kwargs: Any) -> None:
    services.charges_retire_for_metric(billable_metric_id=billable_metric_id)


def known_subscription_ids(sender: Any, **kwargs: Any) -> QuerySet:
    """Every external subscription id that exists (in any status): events for them are matched."""
    return Subscription.objects.values_list("external_id", flat=True)
