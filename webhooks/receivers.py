"""One receiver per Announcement (webhooks.events): the outbox row is written inside the sender's
transaction. A failure to render or write it is logged and never fails the billing change: the
writing runs in a savepoint."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

from . import services
from .events import ANNOUNCEMENTS, Announcement

logger = logging.getLogger(__name__)


def _receiver(announcement: Announcement) -> Callable[..., None]:
    def receive(sender: Any, **kwargs: Any) -> None:
        if announcement.when is not None and not announcement.when(kwargs):
            return
        ids = kwargs.get(announcement.id_kwarg)
        for object_id in ids if isinstance(ids, (list, tuple, set)) else [ids]:
            emit(announcement, object_id)

    receive.__name__ = f"announce_{announcement.webhook_type.replace('.', '_')}"
    return receive


def emit(announcement: Announcement, object_id: Any) -> None:
    # The cheap path, taken by every billing change when nobody listens: one read of the
    # endpoints per transaction, shared by all its announcements (services.transaction_endpoints).
    endpoints = services.endpoints_wanting(announcement.webhook_type)
    if not endpoints:
        return
    try:
        with transaction.atomic():
            services.webhook_emit(
                webhook_type=announcement.webhook_type,
                object_type=announcement.object_type,
                object_id=object_id,
                payload=lambda: announcement.payload(object_id),
                endpoints=endpoints,
            )
    except Exception:
        logger.exception("webhooks: could not write the %s delivery of %s", announcement.webhook_type, object_id)


def connect() -> None:
    from django.db.models.signals import post_delete, post_save

    from metrics.signals import events_rejected

    from .models import WebhookEndpoint

    post_save.connect(services.endpoints_cache_clear, sender=WebhookEndpoint, dispatch_uid="webhooks.endpoints_saved")
    post_delete.connect(
        services.endpoints_cache_clear, sender=WebhookEndpoint, dispatch_uid="webhooks.endpoints_deleted"
    )

    from .digests import announce_rejected_events

    events_rejected.connect(announce_rejected_events, dispatch_uid="webhooks.event.error")
    for announcement in ANNOUNCEMENTS:
        announcement.signal.connect(
            _receiver(announcement),
            weak=False,
            dispatch_uid=f"webhooks.{announcement.webhook_type}",
        )
