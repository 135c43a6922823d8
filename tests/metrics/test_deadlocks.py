"""Overlapping batches sent in any order by many clients never deadlock the ingestion.

Real clients retry overlapping batches in any order. Each batch's rows are inserted in one
canonical order (the unique key's), so two transactions never wait for each other in a cycle;
a deadlock or serialization failure that still happens is retried inside the server.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
from django.db import OperationalError, connection
from rest_framework.test import APIClient

from metrics import ingestion
from metrics.models import Event
from tests.factories.metrics import event_payload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CLIENTS = 16
EVENTS = 1000
BATCH = 100


def test_16_clients_sending_the_same_1000_events_shuffled_store_each_once(api_key, capsys):
    events = [event_payload(transaction_id=f"tx_{i:04}", timestamp=1700000000 + i) for i in range(EVENTS)]
    barrier = threading.Barrier(CLIENTS)
    answers: list[list[int]] = [[] for _ in range(CLIENTS)]

    def client_run(n: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.raw}")
        client.default_format = "json"
        mine = list(events)
        random.Random(n).shuffle(mine)  # each client cuts the same events in a different order
        try:
            barrier.wait(timeout=30)
            for start in range(0, EVENTS, BATCH):
                response = client.post("/api/v1/events/batch", {"events": mine[start : start + BATCH]})
                answers[n].append(response.status_code)
        finally:
            connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client_run, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    elapsed = time.monotonic() - started

    assert not any(thread.is_alive() for thread in threads), "a client is still waiting (livelock)"
    assert answers == [[200] * (EVENTS // BATCH)] * CLIENTS  # every batch of every client acknowledged
    assert Event.objects.count() == EVENTS
    with capsys.disabled():
        print(f"\n16 clients x {EVENTS} shuffled events: {elapsed:.1f} s")


class _Deadlock(Exception):
    sqlstate = "40P01"  # what psycopg's DeadlockDetected carries


def _deadlock() -> OperationalError:
    error = OperationalError("deadlock detected")
    error.__cause__ = _Deadlock()
    return error


def test_a_deadlock_is_retried_inside_the_server(api, monkeypatch):
    real, calls = ingestion._store_once, []

    def deadlocks_twice(*args: Any) -> Any:
        calls.append(1)
        if len(calls) <= 2:
            raise _deadlock()
        return real(*args)

    monkeypatch.setattr(ingestion, "_store_once", deadlocks_twice)
    monkeypatch.setattr(ingestion, "RETRY_BASE_DELAY", 0)

    response = api.post("/api/v1/events/batch", {"events": [event_payload(transaction_id="a", timestamp=1)]})

    assert response.status_code == 200
    assert len(calls) == 3
    assert Event.objects.count() == 1


def test_a_batch_that_keeps_deadlocking_is_a_503_with_retry_after(api, monkeypatch):
    calls = []

    def always(*args: Any) -> Any:
        calls.append(1)
        raise _deadlock()

    monkeypatch.setattr(ingestion, "_store_once", always)
    monkeypatch.setattr(ingestion, "RETRY_BASE_DELAY", 0)

    response = api.post("/api/v1/events/batch", {"events": [event_payload(transaction_id="a", timestamp=1)]})

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json() == {"status": 503, "error": "Service Unavailable", "code": "ingestion_busy"}
    assert len(calls) == ingestion.MAX_ATTEMPTS
    assert not Event.objects.exists()


def test_other_database_errors_are_not_retried(api, monkeypatch):
    calls = []

    def fails(*args: Any) -> Any:
        calls.append(1)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(ingestion, "_store_once", fails)

    response = api.post("/api/v1/events/batch", {"events": [event_payload(transaction_id="a", timestamp=1)]})

    assert len(calls) == 1
    assert response.status_code == 503  # the database is unavailable: JSON, not an HTML 500
    assert response.json()["code"] == "service_unavailable"
