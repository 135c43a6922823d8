"""Races against PostgreSQL: two runs for one period make one invoice; concurrent
finalizations get gapless, unique numbers. Threads, each with its own connection, committed rows."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from invoicing import runs, services, windows
from invoicing.models import Invoice, InvoiceStatus, InvoiceSubscription
from tests.factories.customers import make_customer
from tests.factories.invoicing import bill, events, subscribe, utc
from tests.factories.plans import make_plan, standard_charge

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _race(count: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as error:  # reported to the test, not lost in the thread
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_concurrent_runs_for_one_period_make_one_invoice():
    plan = make_plan(amount_cents=1000, charges=[standard_charge(amount="1")])
    for i in range(5):
        sub = subscribe(plan=plan, external_id=f"sub_{i}")
        events(sub, [utc(2024, 1, 9)] * 3)
    summaries = _race(2, lambda _: bill(utc(2024, 2, 1, 0, 10)))
    assert all(isinstance(s, runs.RunSummary) for s in summaries), summaries
    assert sum(s.created for s in summaries) == 5
    assert sum(s.created + s.skipped for s in summaries) == 10
    assert sum(s.failed for s in summaries) == 0
    assert Invoice.objects.count() == 5
    assert InvoiceSubscription.objects.count() == 5


def test_the_constraint_not_a_check_decides_between_two_racing_inserts():
    plan = make_plan(amount_cents=1000)
    subscription = subscribe(plan=plan)
    window = windows.periodic_window(subscription, utc(2024, 2, 1))

    def create(_: int) -> str:
        try:
            services.invoice_create_for_period(subscription=subscription, window=window, actor="test")
        except services.AlreadyBilled:
            return "already billed"
        return "created"

    assert sorted(_race(2, create)) == ["already billed", "created"]
    assert Invoice.objects.count() == 1


def test_twenty_concurrent_finalizations_get_gapless_unique_numbers():
    customer = make_customer(external_id="busy", invoice_grace_period=5)
    plan = make_plan(amount_cents=1000)
    for i in range(20):
        subscribe(plan=plan, customer=customer, external_id=f"busy_{i}")
    summary = bill(utc(2024, 2, 1, 0, 10))
    assert summary.created == 20
    drafts = list(Invoice.objects.filter(status=InvoiceStatus.DRAFT).values_list("pk", flat=True))
    assert len(drafts) == 20

    results = _race(20, lambda i: services.invoice_finalize(invoice=Invoice(pk=drafts[i]), actor="test").number)
    assert all(isinstance(number, str) for number in results), results
    assert sorted(results) == [f"TOL-001-{n:03d}" for n in range(1, 21)]
    assert sorted(Invoice.objects.values_list("sequential_id", flat=True)) == list(range(1, 21))
