"""The same event (or batch) posted at once from many clients is stored exactly once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from metrics.models import Event
from tests.factories.metrics import event_payload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 8


def at_once(api_key: Any, send: Callable[[APIClient, int], Any]) -> list[Any]:
    """Run `send(client, n)` from THREADS threads released together; their answers."""
    barrier = threading.Barrier(THREADS)
    answers: list[Any] = [None] * THREADS

    def run(n: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.raw}")
        client.default_format = "json"
        try:
            barrier.wait(timeout=30)
            answers[n] = send(client, n)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_one_event_posted_from_8_threads_leaves_one_row(api_key):
    body = {"event": event_payload(transaction_id="tx_race", timestamp=1700000000)}

    answers = at_once(api_key, lambda client, n: client.post("/api/v1/events", body))

    assert [a.status_code for a in answers] == [200] * THREADS
    assert sum(1 for a in answers if a.headers.get("Idempotent-Replayed") != "true") == 1
    assert len({a.json()["event"]["lago_id"] for a in answers}) == 1
    assert Event.objects.count() == 1


def test_8_identical_batches_at_once_leave_each_event_once(api_key):
    events = [event_payload(transaction_id=f"tx_{i}", timestamp=1700000000 + i) for i in range(50)]

    answers = at_once(api_key, lambda client, n: client.post("/api/v1/events/batch", {"events": events}))

    assert [a.status_code for a in answers] == [200] * THREADS
    assert Event.objects.count() == 50
    assert sorted(Event.objects.values_list("transaction_id", flat=True)) == sorted(e["transaction_id"] for e in events)


def test_the_first_of_8_different_payloads_wins_and_the_rest_are_refused(api_key):
    def send(client: APIClient, n: int) -> Any:
        return client.post("/api/v1/events", {"event": event_payload(transaction_id="tx_race", properties={"n": n})})

    answers = at_once(api_key, send)

    assert sorted(a.status_code for a in answers) == [200] + [422] * (THREADS - 1)
    winner = next(a for a in answers if a.status_code == 200)
    assert Event.objects.get().properties == winner.json()["event"]["properties"]
    for answer in answers:
        if answer.status_code == 422:
            assert answer.json()["error_details"] == {"transaction_id": ["value_already_exist"]}
