"""With the broker down nothing is lost and nothing waits: a request that queues a task answers
at once (one connection attempt, no publish retries), the lost task is logged, and the periodic
sweeps find its work again from database state."""

from __future__ import annotations

import logging
import socket
from datetime import timedelta

import pytest
from django.utils import timezone
from kombu import pools

from billing_project.celery import app
from customers.models import Customer
from invoicing import pdf
from invoicing import tasks as invoicing_tasks
from payments import services as payment_services
from tests.factories.customers import make_customer
from tests.factories.payments import make_finalized_invoice, make_stripe_payment

pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed when the block ends: connecting is refused


@pytest.fixture
def broker_down(monkeypatch):
    """The current Celery app publishing (not eager) to a closed port; the connection attempts
    made to it are counted."""
    port = _closed_port()
    attempts: list[tuple[str, int]] = []
    real_connect = socket.socket.connect

    def counting_connect(sock, address):
        if isinstance(address, tuple) and address[1] == port:
            attempts.append(address)
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", counting_connect)
    saved = {key: app.conf[key] for key in ("broker_url", "task_always_eager")}
    app.conf.update(broker_url=f"redis://127.0.0.1:{port}/0", task_always_eager=False)
    _forget_connections()  # made again from the new broker_url
    try:
        yield attempts
    finally:
        app.conf.update(saved)
        _forget_connections()


def _forget_connections() -> None:
    # Celery acquires a producer even for eager tasks: later tests need a pool that is open.
    # kombu keeps its pools in a process-wide registry keyed by connection, so closing the app's
    # pool alone leaves a closed pool there for the next app.pool ("Acquire on closed pool" in
    # every later test of the worker): reset the registry too.
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


def test_publish_settings_fail_fast():
    assert app.conf.task_publish_retry is False
    assert app.conf.broker_transport_options["max_retries"] == 0
    assert app.conf.broker_connection_timeout <= 1
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.broker_transport_options["visibility_timeout"] > app.conf.task_time_limit


def test_a_request_that_queues_a_task_answers_with_one_failed_connection_and_a_log(
    api, broker_down, caplog, django_capture_on_commit_callbacks
):
    customer = {"external_id": "acme", "name": "Acme", "billing_configuration": {"payment_provider": "stripe"}}

    with caplog.at_level(logging.WARNING, logger="billing_project.celery"):
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post("/api/v1/customers", {"customer": customer})

    assert response.status_code == 200, response.json()
    assert Customer.objects.filter(external_id="acme").exists()
    # The sync task was published once and failed at once: one connection attempt, no retry
    # loop (kombu's default policy retried 3 times, +0.65 s per request).
    assert len(broker_down) == 1
    assert "payments.tasks.sync_stripe_customer not published" in caplog.text


def test_a_lost_collect_task_is_recovered_by_the_sweep(monkeypatch):
    collected: list[tuple[str, str, int]] = []
    monkeypatch.setattr(
        payment_services,
        "invoice_payment_collect",
        lambda *, invoice_id, trigger, after_attempt: collected.append((str(invoice_id), trigger, after_attempt)) or 1,
    )
    an_hour_ago = timezone.now() - timedelta(hours=1)
    stripe_customer = make_customer(external_id="stripe", payment_provider="stripe")
    lost = make_finalized_invoice(customer=stripe_customer, finalized_at=an_hour_ago)
    make_finalized_invoice(customer=stripe_customer)  # just finalized: its own task is on its way
    tried = make_finalized_invoice(customer=stripe_customer, finalized_at=an_hour_ago)
    make_stripe_payment(invoice=tried)  # collected already (its retries are the retry schedule's)
    make_finalized_invoice(customer=make_customer(external_id="manual", payment_provider="manual"))
    make_finalized_invoice(customer=stripe_customer, finalized_at=an_hour_ago, total="0")  # nothing to pay

    from payments import tasks

    result = tasks.retry_failed_payments()

    assert collected == [(str(lost.pk), "finalization", 0)]
    assert result["missed_collected"] == 1


def test_a_lost_pdf_task_is_recovered_by_the_sweep():
    an_hour_ago = timezone.now() - timedelta(hours=1)
    lost = make_finalized_invoice(finalized_at=an_hour_ago)
    recent = make_finalized_invoice()

    assert pdf.invoices_missing_pdf(now=timezone.now()) == [lost.pk]
    assert invoicing_tasks.render_missing_invoice_pdfs() == {"missing": 1}

    lost.refresh_from_db()
    recent.refresh_from_db()
    assert lost.file.name and not recent.file.name
    assert invoicing_tasks.render_missing_invoice_pdfs() == {"missing": 0}  # found once
