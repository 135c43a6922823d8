"""A real HTTP receiver on loopback, started by the test, and endpoints registered through the API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    # Statuses to answer, in order; 200 once they run out.
    statuses: list[int] = field(default_factory=list)

    def of_type(self, webhook_type: str) -> list[Received]:
        return [request for request in self.requests if request.json["webhook_type"] == webhook_type]

    def types(self) -> list[str]:
        return [request.json["webhook_type"] for request in self.requests]


def _serve(receiver_holder: list[Receiver]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = receiver_holder[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"try again")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _serve(holder))
    holder.append(Receiver(url=f"http://127.0.0.1:{server.server_port}/hooks"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.TOLLGATE_WEBHOOKS_ALLOW_PRIVATE_URLS = True
    settings.TOLLGATE_WEBHOOK_RETRY_DELAYS = [0, 0, 0]
    settings.TOLLGATE_WEBHOOK_SWEEP_GRACE = 0
    settings.TOLLGATE_WEBHOOK_TIMEOUT = 5
    return settings


def register(api, url: str, **fields: Any) -> dict[str, Any]:
    """An endpoint created through the API; its answer (with the signing secret shown once)."""
    response = api.post("/api/v1/webhook_endpoints", {"webhook_endpoint": {"webhook_url": url, **fields}})
    assert response.status_code == 200, response.json()
    return response.json()["webhook_endpoint"]
