"""Fixtures of the metrics tests."""

from __future__ import annotations

import pytest

from metrics.signals import known_subscription_ids_requested


@pytest.fixture
def no_subscription_source():
    """Disconnect the apps that answer `known_subscription_ids_requested` (plans) for the test:
    unmatched events are then those with an unknown code only."""
    saved = known_subscription_ids_requested.receivers[:]
    known_subscription_ids_requested.receivers.clear()
    known_subscription_ids_requested.sender_receivers_cache.clear()
    yield
    known_subscription_ids_requested.receivers[:] = saved
    known_subscription_ids_requested.sender_receivers_cache.clear()
