"""Prorated charges on invoices, each amount computed by hand in the comments.

May 2024 has 31 days, June 30. Plans are calendar-monthly with no subscription fee, customers in
UTC; subscriptions start May 1 unless said otherwise, so June is a full period whose units
partly come from May (carried in: recurring metrics).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing import billing, buckets, runs, windows
from invoicing.models import FeeType
from invoicing.usage import customer_usage
from plans.models import Subscription
from tests.factories.invoicing import bill, events, only_invoice, subscribe, utc
from tests.factories.plans import make_plan, metric, standard_charge

pytestmark = pytest.mark.django_db

D = Decimal


def _recurring(code: str, aggregation_type: str = "sum_agg", field_name: str = "n"):
    return metric(code, aggregation_type=aggregation_type, field_name=field_name, recurring=True)


def _charge(code: str, charge_model: str, properties: dict, **metric_fields) -> dict:
    return {
        "billable_metric_id": str(_recurring(code, **metric_fields).pk),
        "charge_model": charge_model,
        "properties": properties,
        "prorated": True,
    }


VOLUME = {
    "volume_ranges": [
        {"from_value": 0, "to_value": 5, "per_unit_amount": "2", "flat_amount": "10"},
        {"from_value": 6, "to_value": None, "per_unit_amount": "1", "flat_amount": "20"},
    ]
}
GRADUATED = {
    "graduated_ranges": [
        {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "2"},
        {"from_value": 11, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "3"},
    ]
}


def _plan():
    return make_plan(
        amount_cents=0,
        charges=[
            _charge("seats", "standard", {"amount": "10"}),
            _charge("vseats", "volume", VOLUME),
            _charge("gseats", "graduated", GRADUATED),
            _charge("users", "standard", {"amount": "3"}, aggregation_type="unique_count_agg", field_name="user"),
        ],
    )


def _usage(sub: Subscription) -> None:
    events(sub, [utc(2024, 5, 1, 9)], code="seats", n=5)
    events(sub, [utc(2024, 6, 11, 10)], code="seats", n=3)
    events(sub, [utc(2024, 6, 21, 8)], code="seats", n=-2)
    events(sub, [utc(2024, 5, 1, 9)], code="vseats", n=4)
    events(sub, [utc(2024, 6, 16, 12)], code="vseats", n=4)
    events(sub, [utc(2024, 5, 1, 9)], code="gseats", n=8)
    events(sub, [utc(2024, 6, 16, 12)], code="gseats", n=6)
    events(sub, [utc(2024, 5, 3), utc(2024, 5, 3, 1)], code="users", user="a")
    events(sub, [utc(2024, 5, 3)], code="users", user="b")
    events(sub, [utc(2024, 6, 11, 9)], code="users", user="c")
    events(sub, [utc(2024, 6, 21, 9)], code="users", user="a", operation_type="remove")
    events(sub, [utc(2024, 7, 1)], code="seats", n=100)  # July: never in June


def _fees(invoice) -> dict:
    return {
        fee.charge.billable_metric.code: fee
        for fee in invoice.fees.select_related("charge__billable_metric")
        if fee.fee_type == FeeType.CHARGE
    }


def test_units_present_the_whole_month_cost_the_full_price():
    sub = subscribe(plan=_plan(), start=utc(2024, 5, 1))
    _usage(sub)
    fees = _fees(only_invoice(bill(utc(2024, 6, 1, 0, 10))))
    # Every May unit was added on May 1 (May 1..31 = 31/31) or, for users, May 3 (29/31).
    assert fees["seats"].amount == D("50.00")  # 5 x 10
    assert fees["vseats"].amount == D("18.00")  # 4 full units: tier 0-5: 4 x 2 + 10
    assert fees["gseats"].amount == D("10.00")  # 8 x 1 + 2
    # a and b from May 3: 2 x 29/31 = 1.870967... -> 1.87097 (rounded up) x 3 = 5.61291 -> 5.61
    assert fees["users"].units == D("1.87097")
    assert fees["users"].amount == D("5.61")


def test_june_prorates_units_added_and_removed_and_carries_may_in():
    sub = subscribe(plan=_plan(), start=utc(2024, 5, 1))
    _usage(sub)
    bill(utc(2024, 6, 1, 0, 10))
    invoice = only_invoice(bill(utc(2024, 7, 1, 0, 10)))
    fees = _fees(invoice)

    # seats: 5 carried in (30/30) + 3 from Jun 11 (20/30 = 2) - 2 from Jun 21 (10/30 = 0.666...)
    # = 6.3333... -> 6.33334 prorated units x 10 = 63.3334 -> 63.33. Not the 60 of the 6 seats held
    # at the end: the 2 seats removed on Jun 21 were held 20 days, the 3 added on Jun 11 only 20.
    seats = fees["seats"]
    assert (seats.units, seats.precise_amount, seats.amount) == (D("6.33334"), D("63.3334"), D("63.33"))
    assert seats.events_count == 2
    assert seats.amount_details["full_units"] == "6"

    # vseats: 8 full units -> the 6+ tier (1 per unit, flat 20), whatever the proration;
    # prorated: 4 carried + 4 from Jun 16 (15/30 = 2) = 6 -> 6 x 1 + 20 = 26.
    assert (fees["vseats"].units, fees["vseats"].amount) == (D("6"), D("26.00"))
    assert fees["vseats"].amount_details["tiers"][0]["from_value"] == 6

    # gseats: 8 carried (8, 8) then 6 from Jun 16 (6, 3): tier 0-10 takes 8 + 2 x 1/2 = 9 prorated
    # x 1 + flat 2 = 11; tier 11+ takes 4 x 1/2 = 2 x 0.5 + flat 3 = 4. Total 15 (unprorated: 17).
    assert (fees["gseats"].units, fees["gseats"].amount) == (D("11"), D("15.00"))

    # users: b all June (30 days), a until its removal Jun 21 (21 days, the 21st counts), c from
    # Jun 11 (20 days): 71/30 = 2.3666... -> 2.36667 x 3 = 7.10001 -> 7.10.
    assert (fees["users"].units, fees["users"].amount) == (D("2.36667"), D("7.10"))
    assert invoice.fees_amount == D("111.43")  # 63.33 + 26 + 15 + 7.10


def test_a_subscription_started_mid_month_pays_its_days_only():
    plan = make_plan(amount_cents=0, charges=[_charge("seats", "standard", {"amount": "10"})])
    sub = subscribe(plan=plan, start=utc(2024, 6, 16))
    events(sub, [utc(2024, 6, 16, 10)], code="seats", n=4)  # Jun 16..30 = 15/30: 2
    events(sub, [utc(2024, 6, 26, 23)], code="seats", n=3)  # Jun 26..30 = 5/30: 0.5
    fee = _fees(only_invoice(bill(utc(2024, 7, 1, 0, 10))))["seats"]
    assert (fee.units, fee.amount) == (D("2.5"), D("25.00"))  # 2.5 x 10
    # July: all 7 seats the whole month: 7 x 10.
    assert _fees(only_invoice(bill(utc(2024, 8, 1, 0, 10))))["seats"].amount == D("70.00")


def test_termination_bills_carried_units_for_the_days_used():
    from plans.services import subscription_terminate

    plan = make_plan(amount_cents=0, charges=[_charge("seats", "standard", {"amount": "10"})])
    sub = subscribe(plan=plan, start=utc(2024, 5, 1))
    events(sub, [utc(2024, 5, 2)], code="seats", n=5)
    events(sub, [utc(2024, 6, 5)], code="seats", n=3)
    bill(utc(2024, 6, 1, 0, 10))
    subscription_terminate(subscription=sub, now=utc(2024, 6, 10, 12))
    fee = _fees(runs.bill_final(subscription_id=sub.pk, actor="test"))["seats"]
    # 5 x 10/30 (Jun 1..10) + 3 x 6/30 (Jun 5..10) = 1.6666... + 0.6 = 2.2666... -> 2.26667 x 10 = 22.67
    assert (fee.units, fee.amount) == (D("2.26667"), D("22.67"))


def test_batch_run_current_usage_and_one_subscription_agree():
    plan = _plan()
    subs = []
    for n in range(3):
        sub = subscribe(plan=plan, external_id=f"sub_{n}", start=utc(2024, 5, 1))
        _usage(sub)
        subs.append(sub)
    bill(utc(2024, 6, 1, 0, 10))
    # Mid-June usage covers the whole of June, as the invoice will.
    usage = customer_usage(subscription=subs[0], at=utc(2024, 6, 25))
    by_code = {row.charge.billable_metric.code: row.amount for row in usage.charges_usage}
    assert by_code == {"seats": D("63.33"), "vseats": D("26.00"), "gseats": D("15.00"), "users": D("7.10")}

    summary = bill(utc(2024, 7, 1, 0, 10))  # one chunk: BatchUsage
    assert summary.created == 3
    from invoicing.models import Invoice

    for invoice in Invoice.objects.filter(pk__in=summary.invoice_ids):
        assert invoice.fees_amount == D("111.43")

    one = billing.with_billing_relations(Subscription.objects.filter(pk=subs[1].pk)).get()
    window = windows.periodic_window(one, utc(2024, 7, 1))
    direct = billing.subscription_fees(one, window)
    batch = billing.subscription_fees(one, window, usage=billing.BatchUsage([(one, window.charges_period)]))
    assert [(f.units, f.precise_amount) for f in direct] == [(f.units, f.precise_amount) for f in batch]


@pytest.mark.postgres  # the query counts of the PostgreSQL paths (SQLite aggregates in Python)
def test_batch_usage_asks_one_query_per_prorated_bucket(django_assert_num_queries):
    from tests.factories.customers import make_customer

    plan = _plan()
    subs = []
    for n in range(4):
        customer = make_customer(external_id=f"cust_{n}", timezone="Europe/Paris")
        sub = subscribe(plan=plan, customer=customer, external_id=f"sub_{n}", start=utc(2024, 5, 1))
        _usage(sub)
        subs.append(billing.with_billing_relations(Subscription.objects.filter(pk=sub.pk)).get())
    period = windows.periodic_window(subs[0], utc(2024, 7, 1)).charges_period
    with django_assert_num_queries(4):  # one per prorated charge bucket, whatever the subscriptions
        usage = billing.BatchUsage([(s, period) for s in subs])
    with django_assert_num_queries(0):  # every bucket, graduated steps included, is then cached
        for s in subs:
            for charge in billing.arrears_charges(s):
                bucket = buckets.charge_buckets(charge)[0]
                graduated = charge.charge_model == "graduated"
                usage.prorated(s, charge.billable_metric, bucket, period, with_events=graduated)


def test_grouped_prorated_standard_charge_gives_a_fee_per_group():
    _recurring("seats")
    grouped = standard_charge("seats", properties={"amount": "10", "grouped_by": ["team"]}, prorated=True)
    plan = make_plan(amount_cents=0, charges=[grouped])
    sub = subscribe(plan=plan, start=utc(2024, 6, 1))
    events(sub, [utc(2024, 6, 1)], code="seats", n=2, team="a")  # 2 x 30/30 x 10 = 20
    events(sub, [utc(2024, 6, 16)], code="seats", n=2, team="b")  # 2 x 15/30 x 10 = 10
    invoice = only_invoice(bill(utc(2024, 7, 1, 0, 10)))
    groups = sorted((fee.grouped_by.get("team"), fee.amount) for fee in invoice.fees.filter(fee_type="charge"))
    assert groups == [("a", D("20.00")), ("b", D("10.00"))]
