"""A real Celery worker against Redis, started by the test, runs the hourly billing task: it finds
what is due and fans one task out per subscription-period, against this test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from invoicing.models import Invoice, InvoiceStatus
from tests.factories.invoicing import events, subscribe, utc
from tests.factories.plans import make_plan, standard_charge

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REDIS_HOST = "127.0.0.1"


def _free_redis_db() -> int:
    redis = pytest.importorskip("redis")
    for db in range(15, 1, -1):
        client = redis.Redis(host=REDIS_HOST, port=6379, db=db)
        try:
            if client.dbsize() == 0 and client.set("tollgate:invoicing-test-lock", "1", nx=True, ex=600):
                return db
        except redis.exceptions.ConnectionError:
            pytest.skip("Redis is not running on 127.0.0.1:6379")
    pytest.skip("no free Redis database")


@pytest.fixture
def worker():
    """`celery -A billing_project worker` on a free Redis database, connected to the test database
    (DATABASE_URL names it), stopped and its Redis database emptied afterwards."""
    import redis

    db = _free_redis_db()
    broker = f"redis://{REDIS_HOST}:6379/{db}"
    database = connection.settings_dict
    database_url = (
        f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker,
        "DEBUG": "1",
        "CONN_MAX_AGE": "0",
    }
    log = Path(settings.BASE_DIR) / f".celery-test-worker-{db}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "billing_project", "worker", "--pool", "solo", "--loglevel", "INFO"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        yield broker
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        redis.Redis(host=REDIS_HOST, port=6379, db=db).flushdb()
        log.unlink(missing_ok=True)


def _wait_for_finalized(count: int) -> None:
    deadline = time.monotonic() + 90  # a wait for the worker, not a timed assertion
    while time.monotonic() < deadline and Invoice.objects.filter(status=InvoiceStatus.FINALIZED).count() < count:
        time.sleep(0.5)


def test_a_real_worker_runs_the_hourly_billing_task(worker):
    from celery import Celery

    plan = make_plan(amount_cents=1000, charges=[standard_charge(amount="1")])
    for i in range(3):
        sub = subscribe(plan=plan, external_id=f"sub_{i}")
        events(sub, [utc(2024, 1, 9)] * (i + 1))

    # Not the current app: shared tasks of later tests must keep running eagerly, in process.
    client = Celery("tollgate-test", broker=worker, set_as_current=False)
    client.send_task("invoicing.tasks.bill_due_subscriptions", args=["2024-02-01T00:10:00+00:00"])
    _wait_for_finalized(3)
    totals = sorted(Invoice.objects.values_list("total_amount", flat=True))
    assert [int(t) for t in totals] == [11, 12, 13]  # 10 + 1, 2, 3 events at 1 each
    # Sent again: nothing new, each period is billed once. The March run sent after them fans its
    # tasks out behind theirs (one solo worker, a FIFO queue): once February's three invoices
    # exist, the reruns have run.
    client.send_task("invoicing.tasks.bill_due_subscriptions", args=["2024-02-01T00:10:00+00:00"])
    client.send_task(
        "invoicing.tasks.bill_subscription_period",
        args=[str(sub.pk), "subscription_periodic", "2024-02-01T00:00:00+00:00"],
    )
    client.send_task("invoicing.tasks.bill_due_subscriptions", args=["2024-03-01T00:10:00+00:00"])
    _wait_for_finalized(6)
    by_period = sorted(
        (str(row.invoice_subscriptions.get().from_datetime.date()), int(row.total_amount))
        for row in Invoice.objects.all()
    )
    # January once each; February's fee alone (no events in February).
    assert by_period == [("2024-01-01", 11), ("2024-01-01", 12), ("2024-01-01", 13)] + [("2024-02-01", 10)] * 3
