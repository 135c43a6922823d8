"""Races against PostgreSQL (threads, each with its own connection, committed rows): two runs at
once make one correction and both exit 0; a late batch committed while a run re-rates is left
for the next round, whose correction covers exactly it."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from invoicing.corrections import lineage
from invoicing.corrections.api import fee_events
from invoicing.corrections.models import LateUsageMark
from invoicing.models import Invoice, InvoiceType
from metrics import ingestion
from tests.factories.invoicing import bill, only_invoice, subscribe, utc

from .conftest import GRADUATED, rerate, set_policy, units

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

D = Decimal


def _january():
    from tests.factories.plans import make_plan, make_tax, metric

    make_tax(code="vat_20", rate="20", applied_to_organization=True)
    m = metric("units", aggregation_type="sum_agg", field_name="n")
    plan = make_plan(
        amount_cents=0,
        charges=[{"billable_metric_id": str(m.pk), "charge_model": "graduated", "properties": GRADUATED}],
    )
    subscription = subscribe(plan=plan)
    units(subscription, [50, 30])
    return subscription, only_invoice(bill(utc(2024, 2, 1, 0, 10)))


def _threads(*work: Any) -> list[Any]:
    results: list[Any] = [None] * len(work)

    def run(index: int) -> None:
        try:
            results[index] = work[index]()
        except Exception as error:  # reported to the test, not lost in the thread
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_two_runs_at_once_make_one_correction_and_both_exit_0():
    set_policy("correct")
    subscription, original = _january()
    units(subscription, [40], day=20)
    barrier = threading.Barrier(2)

    def run() -> str:
        barrier.wait()
        call_command("run_invoices", "--at", "2024-02-01T01:00:00Z")
        return "exit 0"

    assert _threads(run, run) == ["exit 0", "exit 0"]
    corrections = Invoice.objects.filter(invoice_type=InvoiceType.CORRECTION)
    assert corrections.count() == 1
    assert corrections.get().fees_amount == D("30.00")


def test_a_batch_committed_during_a_run_goes_to_the_next_correction(monkeypatch):
    set_policy("correct")
    subscription, original = _january()
    units(subscription, [10], day=20)  # batch 1: committed before the run
    snapshot_taken, batch_committed = threading.Event(), threading.Event()
    real_late_events = lineage.late_events

    def paused_late_events(*args: Any, **kwargs: Any) -> Any:
        answer = real_late_events(*args, **kwargs)  # the run's snapshot is taken by now
        snapshot_taken.set()
        assert batch_committed.wait(30)
        return answer

    monkeypatch.setattr(lineage, "late_events", paused_late_events)

    def late_batch() -> str:
        assert snapshot_taken.wait(30)
        event = {
            "transaction_id": "late_2",
            "external_subscription_id": subscription.external_id,
            "code": "units",
            "timestamp": int(utc(2024, 1, 21).timestamp()),
            "properties": {"n": 30},
        }
        ingestion.events_ingest_batch(events=[event], received_at=timezone.now())
        batch_committed.set()
        return "stored"

    first, stored = _threads(lambda: rerate(), late_batch)
    assert stored == "stored"
    assert first.corrections == 1, first
    # The run priced batch 1 alone (80 -> 90: 10.00); the mark stays for batch 2.
    corrections = Invoice.objects.filter(invoice_type=InvoiceType.CORRECTION).order_by("created_at")
    assert [c.fees_amount for c in corrections] == [D("10.00")]
    assert LateUsageMark.objects.filter(external_subscription_id=subscription.external_id).exists()

    monkeypatch.setattr(lineage, "late_events", real_late_events)
    second = rerate()
    assert second.corrections == 1, second
    # 90 -> 120: 10 x 1.00 + 20 x 0.50 = 20.00, covering exactly batch 2's event.
    latest = Invoice.objects.filter(invoice_type=InvoiceType.CORRECTION).order_by("-created_at").first()
    assert latest.fees_amount == D("20.00")
    assert latest.fees.get().events_count == 1
    assert not LateUsageMark.objects.exists()


def test_an_event_in_flight_when_the_run_starts_is_counted_not_lost():
    """A batch inserted (its trigger run against no billed-through instant: not late) but not yet
    committed when the period is billed: the run publishes the period's end, waits for it, and
    counts it. Without the wait it would be neither counted nor marked."""
    import time

    from django.db import transaction

    from tests.factories.plans import make_plan, metric

    m = metric("units", aggregation_type="sum_agg", field_name="n")
    plan = make_plan(
        amount_cents=0,
        charges=[{"billable_metric_id": str(m.pk), "charge_model": "standard", "properties": {"amount": "1"}}],
    )
    subscription = subscribe(plan=plan)
    units(subscription, [50])
    inserted = threading.Event()

    def writer() -> str:
        with transaction.atomic():
            units(subscription, [30])
            inserted.set()
            time.sleep(1.0)  # the run starts meanwhile
        return "committed"

    def run() -> Any:
        assert inserted.wait(30)
        return bill(utc(2024, 2, 1, 0, 10))

    committed, summary = _threads(writer, run)
    assert committed == "committed" and summary.created == 1, summary
    invoice = Invoice.objects.get(invoice_type=InvoiceType.SUBSCRIPTION)
    assert invoice.fees_amount == D("80.00")
    assert fee_events(invoice.fees.get(fee_type="charge")).count() == 2  # both in the fee's lineage
