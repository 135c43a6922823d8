"""A real Celery worker on Redis is killed (SIGKILL) while its delivery's POST is in flight: the
delivery's transaction never commits, the row stays pending, and the sweep run by a new worker
sends it, with the same unique key. Nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from customers import services as customer_services
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _broker() -> str:
    redis = pytest.importorskip("redis")
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13")
    try:
        redis.Redis.from_url(url).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"Redis is not running at {url}")
    return url


def _start_worker(broker: str, log: Path) -> subprocess.Popen[bytes]:
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}"
            f"/{database['NAME']}"
        ),
        "CELERY_BROKER_URL": broker,
        "SECRET_KEY": settings.SECRET_KEY,  # decrypts the stored signing secret
        "DEBUG": "1",
        "CONN_MAX_AGE": "0",
        "TOLLGATE_WEBHOOKS_ALLOW_PRIVATE_URLS": "true",
        "TOLLGATE_WEBHOOK_SWEEP_GRACE": "0",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "billing_project", "worker", "--pool", "solo", "--loglevel", "INFO"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


class _HangingReceiver:
    """Holds the first POST open until released; answers 200 to the others."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.keys.append(self.headers["X-Lago-Unique-Key"])
                if len(outer.keys) == 1:
                    outer.release.wait(60)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hanging_receiver() -> Iterator[_HangingReceiver]:
    receiver = _HangingReceiver()
    yield receiver
    receiver.close()


def _wait(condition: Any, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds  # a wait for the worker, not a timed assertion
    while time.monotonic() < deadline and not condition():
        time.sleep(0.2)


def test_a_worker_killed_mid_delivery_loses_nothing(hanging_receiver, monkeypatch, settings, tmp_path):
    import redis
    from celery import Celery

    broker = _broker()
    settings.TOLLGATE_WEBHOOKS_ALLOW_PRIVATE_URLS = True
    # Not the current app: later tests' shared tasks must keep running eagerly, in process.
    client = Celery("tollgate-webhooks-test", broker=broker, set_as_current=False)
    # The test process has no broker: its after-commit delivery task goes to the worker instead.
    monkeypatch.setattr(
        services,
        "_enqueue",
        lambda ids, countdown=None: [client.send_task("webhooks.tasks.deliver_endpoint", args=[i]) for i in ids],
    )
    log = tmp_path / "worker.log"
    services.webhook_endpoint_create(webhook_url=hanging_receiver.url, signature_algo="hmac")
    first = _start_worker(broker, log)
    second = None
    try:
        customer_services.customer_upsert(external_id="survivor", changes={"name": "Survivor"})
        _wait(lambda: len(hanging_receiver.keys) == 1)
        assert len(hanging_receiver.keys) == 1, log.read_text()
        first.kill()  # SIGKILL while the POST is in flight
        first.wait(timeout=30)

        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.attempts_count) == (DeliveryStatus.PENDING, 0)
        assert not WebhookAttempt.objects.exists()  # the attempt's transaction died with the worker

        hanging_receiver.release.set()
        second = _start_worker(broker, log)
        client.send_task("webhooks.tasks.sweep_deliveries")
        _wait(lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).exists())
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.SUCCEEDED, log.read_text()
        assert hanging_receiver.keys == [str(delivery.unique_key)] * 2
        assert list(delivery.attempts.values_list("number", "status_code")) == [(1, 200)]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        redis.Redis.from_url(broker).flushdb()
