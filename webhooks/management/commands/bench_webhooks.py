"""Measure outbound webhooks on the current database; prints figures, asserts nothing.

    DATABASE_URL=postgres://... python manage.py bench_webhooks --invoices 200 --deliveries 500

Inside one transaction rolled back at the end (nothing stays):
1. What a finalization pays for its outbox rows: one-off invoices created and finalized through
   the service with no endpoint, then with 1 and 3 endpoints (the invoice serialized once, one
   delivery row per endpoint), per invoice; the ratio is with/without, in this run.
2. Deliveries per second to a local receiver (http.server on loopback answering 200): the real
   drain (lock, sign jwt + Tollgate-Signature, POST, attempt row, status), against bare POSTs of
   the same bodies to the same receiver and SELECT 1 round trips in this run.
Compare figures within one run, never across machines.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import urllib3
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from customers.models import Customer, Organization
from invoicing import services as invoicing_services
from plans import services as plans_services
from webhooks import services
from webhooks.models import SignatureAlgo, WebhookDelivery, WebhookEndpoint


class _Rollback(Exception):
    pass


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


class Command(BaseCommand):
    help = "Benchmark the outbox cost of a finalization and deliveries per second to a local receiver."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--invoices", type=int, default=200)
        parser.add_argument("--deliveries", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}/bench"
        try:
            with override_settings(TOLLGATE_WEBHOOKS_ALLOW_PRIVATE_URLS=True, CELERY_TASK_ALWAYS_EAGER=True):
                try:
                    with transaction.atomic():
                        self._run(url, options["invoices"], options["deliveries"])
                        raise _Rollback
                except _Rollback:
                    pass
        finally:
            server.shutdown()
            server.server_close()

    def _finalizations(self, customer: Customer, count: int) -> tuple[float, float]:
        """Seconds and queries per one-off invoice created and finalized (the service, in savepoints)."""
        fees = [{"add_on_code": "bench_setup", "units": 2}]
        connection.queries_log.clear()  # the log keeps 9,000 queries: a full one counts nothing
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            for _ in range(count):
                invoicing_services.invoice_create_one_off(customer=customer, currency="USD", fees=fees, actor="bench")
            seconds = (time.perf_counter() - started) / count
        return seconds, len(queries.captured_queries) / count

    def _run(self, url: str, invoices: int, deliveries: int) -> None:
        out = self.stdout.write
        WebhookEndpoint.objects.all().delete()  # rolled back: the bench starts with no endpoint
        Organization.current()
        customer = Customer.objects.create(external_id="bench_webhooks", name="Bench", currency="USD")
        plans_services.add_on_create(name="Setup", code="bench_setup", amount_cents=1000, amount_currency="USD")
        self._finalizations(customer, 5)  # warm-up: caches, the numbering row

        figures = {}
        for endpoints in (0, 1, 3):
            while WebhookEndpoint.objects.count() < endpoints:
                services.webhook_endpoint_create(
                    webhook_url=f"{url}/{WebhookEndpoint.objects.count()}", signature_algo=SignatureAlgo.JWT
                )
            figures[endpoints] = self._finalizations(customer, invoices)
        rows = WebhookDelivery.objects.count()
        out(f"bench_webhooks: {invoices} one-off invoices finalized per configuration ({rows} outbox rows written)")
        base, base_queries = figures[0]
        for endpoints, (seconds, queries) in figures.items():
            extra = (seconds - base) * 1000
            out(
                f"  {endpoints} endpoint(s): {seconds * 1000:.2f} ms, {queries:.1f} queries per finalization"
                f"  (+{extra:.2f} ms, +{queries - base_queries:.1f} queries; {seconds / base:.2f}x the time"
                " without endpoints)"
            )

        # Deliveries: one endpoint, `deliveries` pending rows, drained as a worker would.
        WebhookEndpoint.objects.all().delete()
        endpoint = services.webhook_endpoint_create(webhook_url=url, signature_algo=SignatureAlgo.JWT).endpoint
        hmac_endpoint = services.webhook_endpoint_create(
            webhook_url=f"{url}/hmac", signature_algo=SignatureAlgo.HMAC
        ).endpoint
        body_object = {"lago_id": "bench", "amount_cents": 1000, "items": list(range(50))}
        for number in range(deliveries):
            services.webhook_emit(
                webhook_type="invoice.created",
                object_type="invoice",
                object_id=number,
                payload=body_object,
                endpoints=[endpoint, hmac_endpoint],
            )
        sample = WebhookDelivery.objects.filter(endpoint=endpoint).first()
        assert sample is not None
        body = sample.body.encode()

        rates = {}
        per_delivery = {}
        for name, target in (("jwt", endpoint), ("hmac", hmac_endpoint)):
            connection.queries_log.clear()
            with CaptureQueriesContext(connection) as drained:
                started = time.perf_counter()
                sent = 0
                while sent < deliveries:
                    sent_now = services.endpoint_drain(endpoint_id=target.pk, limit=deliveries)
                    if not sent_now:
                        break
                    sent += sent_now
                rates[name] = sent / (time.perf_counter() - started)
            per_delivery[name] = len(drained.captured_queries) / max(sent, 1)

        port = int(url.split(":")[2].split("/")[0])
        started = time.perf_counter()
        for _ in range(deliveries):
            fresh = urllib3.HTTPConnectionPool("127.0.0.1", port, retries=False)
            fresh.urlopen("POST", "/bench", body=body, headers={"Content-Type": "application/json"})
            fresh.close()
        bare_fresh = deliveries / (time.perf_counter() - started)

        with connection.cursor() as cursor:
            started = time.perf_counter()
            for _ in range(deliveries):
                cursor.execute("SELECT 1")
            round_trip = (time.perf_counter() - started) / deliveries

        out(f"bench_webhooks: {deliveries} deliveries per endpoint to a local receiver")
        for name, rate in rates.items():
            # The floor of this design: one bare POST plus its queries as bare round trips.
            floor = 1 / (1 / bare_fresh + per_delivery[name] * round_trip)
            out(
                f"  drain ({name}): {rate:,.0f} deliveries/s, {per_delivery[name]:.1f} queries each"
                f"  ({rate / bare_fresh:.2f}x bare POSTs; {rate / floor:.2f}x a bare POST + that many SELECT 1)"
            )
        out(f"  bare POSTs on fresh connections: {bare_fresh:,.0f}/s; SELECT 1 round trip: {round_trip * 1000:.2f} ms")
