"""Worked examples of the fee computation, each amount computed by hand in the comments.

January 2024 has 31 days; plans are calendar-monthly, customers in UTC unless said otherwise.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing import billing, buckets, runs
from invoicing.models import Fee, FeeType, InvoiceStatus, InvoicingReason
from plans.models import Subscription
from tests.factories.invoicing import amounts, bill, events, only_invoice, subscribe, utc
from tests.factories.metrics import make_event
from tests.factories.plans import make_plan, metric, standard_charge

pytestmark = pytest.mark.django_db

D = Decimal


def _all_models_plan(**fields):
    calls = metric("api_calls")
    grad = metric("grad", aggregation_type="sum_agg", field_name="n")
    pack = metric("pack", aggregation_type="sum_agg", field_name="n")
    pay = metric("pay", aggregation_type="sum_agg", field_name="amount")
    vol = metric("vol", aggregation_type="sum_agg", field_name="n")
    gpay = metric("gpay", aggregation_type="sum_agg", field_name="amount")
    dyn = metric("dyn", aggregation_type="sum_agg", field_name="n")
    charges = [
        {"billable_metric_id": str(calls.pk), "charge_model": "standard", "properties": {"amount": "0.05"}},
        {
            "billable_metric_id": str(grad.pk),
            "charge_model": "graduated",
            "properties": {
                "graduated_ranges": [
                    {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "2"},
                    {"from_value": 11, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "0"},
                ]
            },
        },
        {
            "billable_metric_id": str(pack.pk),
            "charge_model": "package",
            "properties": {"amount": "5", "package_size": 10, "free_units": 5},
        },
        {
            "billable_metric_id": str(pay.pk),
            "charge_model": "percentage",
            "properties": {"rate": "1.5", "fixed_amount": "0.1"},
        },
        {
            "billable_metric_id": str(vol.pk),
            "charge_model": "volume",
            "properties": {
                "volume_ranges": [
                    {"from_value": 0, "to_value": 100, "per_unit_amount": "0.1", "flat_amount": "1"},
                    {"from_value": 101, "to_value": None, "per_unit_amount": "0.05", "flat_amount": "0"},
                ]
            },
        },
        {
            "billable_metric_id": str(gpay.pk),
            "charge_model": "graduated_percentage",
            "properties": {
                "graduated_percentage_ranges": [
                    {"from_value": 0, "to_value": 100, "rate": "2", "flat_amount": "0"},
                    {"from_value": 101, "to_value": None, "rate": "1", "flat_amount": "0.5"},
                ]
            },
        },
        {"billable_metric_id": str(dyn.pk), "charge_model": "dynamic", "properties": {}},
    ]
    return make_plan(amount_cents=4900, charges=charges, **fields)


def _usage(sub, day=5):
    t = utc(2024, 1, day, 12)
    events(sub, [t] * 10)  # api_calls: 10 events
    events(sub, [t], code="grad", n=15)
    events(sub, [t], code="pack", n=26)
    events(sub, [t], code="pay", amount=100)
    events(sub, [t], code="pay", amount="200.5")
    events(sub, [t], code="vol", n=150)
    events(sub, [t], code="gpay", amount="300.5")
    make_event(
        timestamp=t,
        code="dyn",
        external_subscription_id=sub.external_id,
        properties={"n": 1},
        precise_total_amount_cents="1234.5",
    )
    make_event(
        timestamp=t,
        code="dyn",
        external_subscription_id=sub.external_id,
        properties={"n": 1},
        precise_total_amount_cents="100",
    )
    # Outside January: never billed with January.
    events(sub, [utc(2024, 2, 1)] * 7)


# Hand-computed charge fees (precise, then rounded half-up to cents):
EXPECTED_CHARGES = {
    "api_calls": (D("0.5"), D("0.50")),  # 10 x 0.05
    "grad": (D("14.5"), D("14.50")),  # 10 x 1 + 2 flat, then 5 x 0.5
    "pack": (D("15"), D("15.00")),  # 26 - 5 free = 21 units -> 3 packages of 10 x 5
    "pay": (D("4.7075"), D("4.71")),  # 300.5 x 1.5% = 4.5075, + 2 x 0.10 fixed
    "vol": (D("7.5"), D("7.50")),  # 150 units in the 101+ tier: 150 x 0.05
    "gpay": (D("4.505"), D("4.51")),  # 100 x 2% = 2, 200.5 x 1% = 2.005 + 0.5 flat
    "dyn": (D("13.345"), D("13.35")),  # (1234.5 + 100) cents
}


def _charge_fees(invoice) -> dict[str, Fee]:
    return {
        fee.charge.billable_metric.code: fee
        for fee in invoice.fees.select_related("charge__billable_metric")
        if fee.fee_type == FeeType.CHARGE
    }


def test_every_charge_model_in_arrears():
    sub = subscribe(plan=_all_models_plan())
    _usage(sub)
    invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    fees = _charge_fees(invoice)
    for code, (precise, rounded) in EXPECTED_CHARGES.items():
        assert fees[code].precise_amount == precise, code
        assert fees[code].amount == rounded, code
    assert fees["api_calls"].events_count == 10
    subscription_fee = invoice.fees.get(fee_type=FeeType.SUBSCRIPTION)
    assert subscription_fee.amount == D("49")
    assert (subscription_fee.from_datetime, subscription_fee.to_datetime) == (utc(2024, 1, 1), utc(2024, 2, 1))
    # 49 + 0.50 + 14.50 + 15 + 4.71 + 7.50 + 4.51 + 13.35 = 109.07
    assert amounts(invoice)["total_amount"] == D("109.07")
    assert invoice.invoice_subscriptions.get().invoicing_reason == InvoicingReason.SUBSCRIPTION_PERIODIC


def test_every_charge_model_in_advance():
    sub = subscribe(plan=_all_models_plan(pay_in_advance=True))
    # The first period is billed when the subscription starts (the receiver does it after commit).
    starting = runs.bill_starting(subscription_id=sub.pk, actor="test")
    assert starting.fees.get().amount == D("49")
    assert starting.invoice_subscriptions.get().invoicing_reason == InvoicingReason.SUBSCRIPTION_STARTING
    _usage(sub)
    invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    fee = invoice.fees.get(fee_type=FeeType.SUBSCRIPTION)
    # In advance: February's fee, with January's usage.
    assert (fee.from_datetime, fee.to_datetime, fee.amount) == (utc(2024, 2, 1), utc(2024, 3, 1), D("49"))
    fees = _charge_fees(invoice)
    assert {code: fees[code].amount for code in EXPECTED_CHARGES} == {k: v[1] for k, v in EXPECTED_CHARGES.items()}
    assert fees["api_calls"].from_datetime == utc(2024, 1, 1)
    assert amounts(invoice)["total_amount"] == D("109.07")
    assert runs.bill_starting(subscription_id=sub.pk, actor="test") is None  # billed once


def test_partial_first_period_is_prorated_by_days():
    plan = make_plan(amount_cents=4900)
    subscribe(plan=plan, start=utc(2024, 1, 10, 15))
    invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    fee = invoice.fees.get()
    # Jan 10..31 = 22 of 31 days: 49 x 22 / 31 = 34.774193... -> 34.77
    assert fee.amount == D("34.77")
    assert fee.precise_amount.quantize(D("0.000001")) == D("34.774194")


def test_trial_days_are_free():
    plan = make_plan(amount_cents=4900, trial_period=D("10"))
    subscribe(plan=plan)
    invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    # The trial ends Jan 11 00:00: Jan 11..31 = 21 days: 49 x 21 / 31 = 33.193548... -> 33.19
    assert invoice.fees.get().amount == D("33.19")


def test_trial_covering_the_whole_period_bills_zero_and_keeps_the_fee():
    plan = make_plan(amount_cents=4900, trial_period=D("45"))
    subscribe(plan=plan)
    invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    assert invoice.fees.get().amount == D("0")
    assert invoice.total_amount == 0
    assert invoice.payment_status == "succeeded"  # nothing to collect


def test_termination_bills_the_final_partial_period_and_only_its_usage():
    from plans.services import subscription_terminate

    plan = make_plan(amount_cents=4900, charges=[standard_charge(amount="1")])
    sub = subscribe(plan=plan)
    events(sub, [utc(2024, 1, 16, 11, 59)] * 3 + [utc(2024, 1, 16, 12, 1)])
    subscription_terminate(subscription=sub, now=utc(2024, 1, 16, 12))
    invoice = runs.bill_final(subscription_id=sub.pk, actor="test")
    fees = {fee.fee_type: fee for fee in invoice.fees.all()}
    # Jan 1..16 used (the 16th counts): 49 x 16 / 31 = 25.290322... -> 25.29; 3 events before 12:00.
    assert fees[FeeType.SUBSCRIPTION].amount == D("25.29")
    assert fees[FeeType.CHARGE].units == 3
    assert amounts(invoice)["total_amount"] == D("28.29")
    assert invoice.invoice_subscriptions.get().invoicing_reason == InvoicingReason.SUBSCRIPTION_TERMINATING
    # The hourly run does not bill it again.
    assert bill(utc(2024, 2, 1, 0, 10)).created == 0


def test_spending_minimum_adds_a_true_up_fee_and_zero_fees_are_kept():
    plan = make_plan(amount_cents=0, charges=[standard_charge(amount="0.1", min_amount_cents=1000)])
    sub = subscribe(plan=plan)
    events(sub, [utc(2024, 1, 3)] * 25)
    invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    fees = list(invoice.fees.order_by("created_at", "id"))
    by_kind = [(fee.fee_type, fee.amount_details.get("true_up", False), fee.amount) for fee in fees]
    # Subscription fee 0 (kept); 25 x 0.10 = 2.50; minimum 10 -> true-up 7.50.
    assert sorted(by_kind) == sorted(
        [(FeeType.SUBSCRIPTION, False, D("0")), (FeeType.CHARGE, False, D("2.5")), (FeeType.CHARGE, True, D("7.5"))]
    )
    assert invoice.total_amount == D("10")


def test_charge_filters_price_each_slice_and_the_remainder():
    metric("api_calls", filters={"region": ["eu", "us"], "tier": ["gold"]})
    filters = [
        {"values": {"region": ["eu"]}, "properties": {"amount": "2"}, "invoice_display_name": "EU"},
        {"values": {"region": ["eu"], "tier": ["gold"]}, "properties": {"amount": "5"}},
    ]
    plan = make_plan(amount_cents=0, charges=[standard_charge(amount="1", filters=filters)])
    sub = subscribe(plan=plan)
    t = utc(2024, 1, 9)
    events(sub, [t] * 2, region="eu")  # EU filter: 2 x 2 = 4
    events(sub, [t] * 3, region="eu", tier="gold")  # the more specific filter: 3 x 5 = 15
    events(sub, [t] * 4, region="us")  # no filter: charge price 4 x 1 = 4
    invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    charge_fees = [fee for fee in invoice.fees.select_related("charge_filter") if fee.fee_type == FeeType.CHARGE]
    got = sorted(
        (fee.charge_filter.invoice_display_name if fee.charge_filter else "-", fee.units, fee.amount)
        for fee in charge_fees
    )
    assert [(name, int(units), amount) for name, units, amount in got] == [
        ("", 3, D("15")),
        ("-", 4, D("4")),
        ("EU", 2, D("4")),
    ]
    assert invoice.total_amount == D("23")


def test_event_bucket_takes_the_most_specific_filter_as_the_sql_does():
    """One event's bucket (pay-in-advance pricing) follows the aggregation's rule: the matching
    filter with the most keys, the first listed on a tie, else the remainder. (This replaces
    plans.charge_models.matching_filter, a second copy of the rule that nothing called.)"""
    metric("api_calls", filters={"region": ["eu", "us", "asia"], "tier": ["gold", "silver"]})
    filters = [
        {"values": {"region": ["eu", "us"]}, "properties": {"amount": "2"}},
        {"values": {"region": ["eu"], "tier": ["gold"]}, "properties": {"amount": "5"}},
        {"values": {"tier": ["__ALL_FILTER_VALUES__"]}, "properties": {"amount": "3"}},
    ]
    plan = make_plan(amount_cents=0, charges=[standard_charge(amount="1", filters=filters)])
    subscription = billing.with_billing_relations(Subscription.objects.filter(pk=subscribe(plan=plan).pk)).get()
    charge = billing.billable_charges(subscription)[0]
    priced = [
        bucket.charge_filter.properties["amount"] for bucket in buckets.charge_buckets(charge) if bucket.charge_filter
    ]

    def bucket_of(properties: dict[str, object]) -> str | None:
        bucket = buckets.event_bucket(charge, properties)
        return bucket.charge_filter.properties["amount"] if bucket.charge_filter else None

    assert sorted(priced) == ["2", "3", "5"]
    assert bucket_of({"region": "eu", "tier": "gold"}) == "5"
    assert bucket_of({"region": "eu", "tier": "silver"}) == "2"  # a tie of one key each: first listed
    assert bucket_of({"region": "asia", "tier": "silver"}) == "3"
    assert bucket_of({"region": "asia"}) is None
    assert bucket_of({"tier": None}) is None


def test_grouped_standard_charge_gives_a_fee_per_group():
    grouped = standard_charge(properties={"amount": "0.5", "grouped_by": ["workspace"]})
    plan = make_plan(amount_cents=0, charges=[grouped])
    sub = subscribe(plan=plan)
    events(sub, [utc(2024, 1, 2)] * 3, workspace="a")
    events(sub, [utc(2024, 1, 2)] * 1, workspace="b")
    invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    groups = sorted((fee.grouped_by.get("workspace"), fee.amount) for fee in invoice.fees.filter(fee_type="charge"))
    assert groups == [("a", D("1.5")), ("b", D("0.5"))]


@pytest.mark.postgres  # the query counts of the PostgreSQL paths (SQLite aggregates in Python)
def test_queries_per_invoice_do_not_depend_on_the_number_of_events(django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    plan = _all_models_plan()
    few = subscribe(plan=plan, external_id="few")
    many = subscribe(plan=plan, external_id="many")
    events(few, [utc(2024, 1, 3)])
    events(many, [utc(2024, 1, 3)] * 300)
    counts = {}
    for sub in (few, many):
        with CaptureQueriesContext(connection) as captured:
            summary = bill(utc(2024, 2, 1, 0, 10), subscription_external_id=sub.external_id)
        assert summary.created == 1
        counts[sub.external_id] = len(captured)
    assert counts["few"] == counts["many"]
    assert all(i.status == InvoiceStatus.FINALIZED for i in invoice_list())


def invoice_list():
    from invoicing.models import Invoice

    return Invoice.objects.all()
