"""An original fee's lineage is one row (its events' ids); a correction's late events are a row
each, never one its line's set holds. Invoicing 0018 moved the rows written before it into sets,
and its reverse moves them back: both ways keep every event counted for its line exactly once."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from invoicing.corrections.models import Correction, FeeEvent, FeeEventSet
from invoicing.models import Fee, InvoiceType
from metrics.models import Event
from tests.factories.invoicing import bill, only_invoice, subscribe, utc

from .conftest import rerate, set_policy, units


def _state() -> tuple[dict, list]:
    sets = {fee_id: ids for fee_id, ids in FeeEventSet.objects.values_list("fee_id", "event_ids")}
    rows = sorted(FeeEvent.objects.values_list("fee_id", "root_fee_id", "event_id", "correction_id"), key=str)
    return sets, rows


@pytest.mark.django_db(transaction=True)
def test_a_correction_counts_only_the_late_event_and_0018_moves_sets_both_ways(graduated_plan):
    set_policy("correct")
    subscription = subscribe(plan=graduated_plan)
    units(subscription, [50, 30])
    original = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    fee = original.fees.get(fee_type="charge")
    of_subscription = Event.objects.filter(external_subscription_id=subscription.external_id)
    january = sorted(of_subscription.values_list("id", flat=True))
    units(subscription, [40], day=20)  # late
    assert rerate().corrections == 1
    (late,) = of_subscription.exclude(id__in=january)
    correction = Correction.objects.get(original_invoice=original)
    added = Fee.objects.get(invoice__invoice_type=InvoiceType.CORRECTION, fee_type="charge")

    # The original fee: one set, its two events; the correction: one row, the late event alone
    # (the scope it selected from held all three).
    sets, rows = _state()
    assert sets == {fee.pk: january}
    assert rows == [(added.pk, fee.pk, late.pk, correction.pk)]

    executor = MigrationExecutor(connection)
    try:
        executor.migrate([("invoicing", "0017_mrr_fee_trigger_by_id")])
        with connection.cursor() as cursor:  # before 0018: a row per event, the original's without correction
            cursor.execute(
                "SELECT fee_id, root_fee_id, event_id, correction_id FROM invoicing_feeevent ORDER BY event_id"
            )
            assert cursor.fetchall() == [(fee.pk, fee.pk, january[0], None), (fee.pk, fee.pk, january[1], None)] + [
                (added.pk, fee.pk, late.pk, correction.pk)
            ]
        executor = MigrationExecutor(connection)
        executor.migrate([("invoicing", "0018_lineage_sets")])
        assert _state() == (sets, rows)
    finally:
        MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())
