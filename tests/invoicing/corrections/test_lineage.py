"""Lineage: GET /fees/{id}/events lists exactly the events a fee counted. For every aggregation
type, filtered and grouped, the listed events replayed under a fresh subscription and aggregated
with no filter give the fee's units (so the list is neither short nor long)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing.models import Fee
from metrics.aggregation import aggregate
from metrics.models import Event
from tests.factories.invoicing import bill, only_invoice, subscribe, utc
from tests.factories.metrics import make_events, make_metric
from tests.factories.plans import make_plan, metric

pytestmark = pytest.mark.django_db

D = Decimal

KINDS = [
    ("count_agg", False),
    ("sum_agg", False),
    ("max_agg", False),
    ("latest_agg", False),
    ("unique_count_agg", False),
    ("unique_count_agg", True),
    ("weighted_sum_agg", False),
    ("weighted_sum_agg", True),
]


def _events(subscription, code):
    rows = []
    for day, (region, n, user) in enumerate(
        [("eu", 5, "a"), ("us", 7, "b"), ("eu", 3, "a"), ("eu", "not a number", "c"), ("asia", 11, "d")], start=3
    ):
        rows.append(
            {
                "external_subscription_id": subscription.external_id,
                "code": code,
                "timestamp": utc(2024, 1, day, 9),
                "properties": {"region": region, "n": n, "user": user},
            }
        )
    # Outside the period (December: counted only as carried in by recurring metrics).
    rows.append(
        {
            "external_subscription_id": subscription.external_id,
            "code": code,
            "timestamp": utc(2023, 12, 30),
            "properties": {"region": "eu", "n": 2, "user": "z"},
        }
    )
    make_events(rows)


def _replayed_units(fee, api, code):
    answer = api.get(f"/api/v1/fees/{fee.pk}/events", {"per_page": 100})
    assert answer.status_code == 200, answer.content
    listed = answer.json()["events"]
    assert answer.json()["meta"]["total_count"] == len(listed)
    ids = [row["transaction_id"] for row in listed]
    replay = f"replay_{fee.pk}"
    make_events(
        {
            "external_subscription_id": replay,
            "code": code,
            "timestamp": e.timestamp,
            "properties": e.properties,
        }
        for e in Event.objects.filter(transaction_id__in=ids, external_subscription_id="sub_1")
    )
    result = aggregate(
        metric(code),
        external_subscription_ids=[replay],
        from_datetime=utc(2024, 1, 1),
        to_datetime=utc(2024, 2, 1),
    )
    return result.units, len(listed)


def _charge(code, aggregation_type, recurring, shape):
    """A standard charge on a new metric `code` over `region`: a filter bucket for eu (2.00 a
    unit, the rest 1.00), or grouped by region."""
    field = "user" if aggregation_type == "unique_count_agg" else "n"
    m = make_metric(
        code=code,
        aggregation_type=aggregation_type,
        field_name="" if aggregation_type == "count_agg" else field,
        recurring=recurring,
        filters={"region": ["eu", "us", "asia"]},
    )
    if shape == "filtered":
        return {
            "billable_metric_id": str(m.pk),
            "charge_model": "standard",
            "properties": {"amount": "1"},
            "filters": [{"values": {"region": ["eu"]}, "properties": {"amount": "2"}}],
        }
    return {
        "billable_metric_id": str(m.pk),
        "charge_model": "standard",
        "properties": {"amount": "1", "grouped_by": ["region"]},
    }


@pytest.mark.parametrize(("aggregation_type", "recurring"), KINDS)
@pytest.mark.parametrize("shape", ["filtered", "grouped"])
def test_listed_events_reproduce_the_fee_units(api, aggregation_type, recurring, shape):
    code = f"m_{aggregation_type}_{int(recurring)}"
    plan = make_plan(amount_cents=0, charges=[_charge(code, aggregation_type, recurring, shape)])
    subscription = subscribe(plan=plan, start=utc(2023, 12, 1))
    _events(subscription, code)
    bill(utc(2024, 1, 1, 0, 10))  # December
    invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    fees = list(Fee.objects.filter(invoice=invoice, fee_type="charge"))
    assert len(fees) >= 2
    checked = 0
    for fee in fees:
        units, listed = _replayed_units(fee, api, code)
        assert units.quantize(D("1e-10")) == fee.units, (fee.grouped_by, fee.charge_filter_id, units, fee.units, listed)
        checked += 1
    assert checked == len(fees)


def test_unknown_fee_is_404(api):
    answer = api.get("/api/v1/fees/00000000-0000-0000-0000-000000000000/events")
    assert answer.status_code == 404
    assert answer.json()["code"] == "fee_not_found"


def _own_select(fee):
    """The events one fee's scope selects alone (its own select, as before batches grouped them)."""
    from django.db import connection

    from invoicing.corrections import lineage

    scope = lineage.period_fee_scope(fee)
    sql, params = lineage.union_sql([lineage.Entry(tag=0, fee_id=fee.pk, root_id=fee.pk, scope=scope)])
    assert " JOIN unnest(" not in sql  # one entry: the single select
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM ({sql}) x ORDER BY id", params)
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.parametrize(("aggregation_type", "recurring"), KINDS)
@pytest.mark.parametrize("shape", ["filtered", "grouped"])
def test_a_batchs_fees_of_one_charge_are_selected_together_as_each_alone(aggregation_type, recurring, shape):
    """Three subscriptions on the plan billed in one batch (one statement): the lineage selects
    the fees of a charge (and bucket, group) in one join of the subscriptions' periods with the
    events, and each fee's set is exactly what its own select lists: other subscriptions'
    events, another start (a shorter period), the events before the period."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from invoicing.corrections.models import FeeEventSet
    from invoicing.models import FeeType

    code = f"b_{aggregation_type}_{int(recurring)}"
    plan = make_plan(amount_cents=0, charges=[_charge(code, aggregation_type, recurring, shape)])
    subscriptions = [
        subscribe(plan=plan, external_id="sub_a", start=utc(2023, 12, 1)),
        subscribe(plan=plan, external_id="sub_b", start=utc(2023, 12, 1)),
        subscribe(plan=plan, external_id="sub_c", start=utc(2024, 1, 4)),  # from January 4th
    ]
    for subscription in subscriptions[:2]:
        _events(subscription, code)
    _events(subscriptions[2], code)
    bill(utc(2024, 1, 1, 0, 10))  # December of the first two
    with CaptureQueriesContext(connection) as captured:
        bill(utc(2024, 2, 1, 0, 10))  # January: the three in one batch
    (insert,) = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("WITH i0 AS (INSERT")]
    assert "AS m0(sub, tag, fee, root)" in insert  # the fees of a shape: one join
    fees = list(
        Fee.objects.filter(
            fee_type=FeeType.CHARGE,
            to_datetime=utc(2024, 2, 1),
            subscription__external_id__in=["sub_a", "sub_b", "sub_c"],
        ).select_related("subscription", "charge__billable_metric", "charge_filter")
    )
    assert {fee.subscription.external_id for fee in fees} == {"sub_a", "sub_b", "sub_c"}
    sets = dict(FeeEventSet.objects.filter(fee__in=fees).values_list("fee_id", "event_ids"))
    compared = 0
    for fee in fees:
        own = _own_select(fee)
        assert sets.get(fee.pk, []) == own, (fee.subscription.external_id, fee.grouped_by, fee.charge_filter_id)
        compared += bool(own)
    assert compared >= 3  # every subscription has a fee that counted events
