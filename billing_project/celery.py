"""The Celery app, configured from Django settings (namespace CELERY)."""

# Publishing is the fast path, never the only one (shared/ARCHITECTURE.md, "Side effects"): a task
# that cannot be published because the broker is unreachable is logged and dropped, and the
# request goes on; the periodic sweep that owns that effect finds it again from database state.
# Settings make that failure fast (a short connect timeout, no publish retries).

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, Task
from kombu.exceptions import OperationalError as BrokerUnavailable

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_project.settings")

logger = logging.getLogger(__name__)


class SweptTask(Task):
    """A task whose effect a periodic sweep also finds: a failed publish is not the caller's
    failure. (Eager mode runs the task inline and lets its errors through, as before.)"""

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        if self.app.conf.task_always_eager:
            return super().apply_async(args, kwargs, **options)
        try:
            return super().apply_async(args, kwargs, **options)
        except BrokerUnavailable as error:
            logger.warning("task %s not published, broker unavailable (its sweep will do it): %s", self.name, error)
            return None


app = Celery("tollgate", task_cls=SweptTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
