"""After commit, never inside the transaction: the one way a change sends a signal or queues a task.
Robust: a failing receiver or publish is logged and never turns a committed change into an error
(the periodic sweeps find lost work again from database state)."""

from __future__ import annotations

import functools
from typing import Any

from django.db import transaction
from django.dispatch import Signal


def send_after_commit(signal: Signal, *, sender: Any, **kwargs: Any) -> None:
    transaction.on_commit(functools.partial(signal.send, sender=sender, **kwargs), robust=True)


def delay_after_commit(task: Any, *args: Any) -> None:
    """`task.delay(*args)` once the transaction commits (a Celery task; args must be JSON-able)."""
    transaction.on_commit(functools.partial(task.delay, *args), robust=True)
