"""Pay-in-advance charges: each event is priced when it arrives, as the increment of the charge
model's amount over the charges period (price(units before + this event) - price(units before)),
invoiced at once when the charge is invoiceable, and never billed again at the period's end.

Plans are calendar-monthly in USD, customers in UTC; January 2024 has 31 days. Every amount is
computed by hand in the comments.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command

from invoicing import advance_charges, selectors
from invoicing.models import Fee, Invoice, InvoiceStatus, InvoiceSubscription, InvoicingReason
from metrics.models import Event
from metrics.signals import events_stored
from tests.factories.invoicing import bill, only_invoice, subscribe, utc
from tests.factories.metrics import make_event
from tests.factories.plans import make_plan, make_tax, metric

pytestmark = pytest.mark.django_db

D = Decimal
JAN = utc(2024, 1, 1)


def _charge(code: str, model: str, properties: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "billable_metric_id": str(metric(code).pk),
        "charge_model": model,
        "properties": properties,
        "pay_in_advance": True,
        **fields,
    }


GRADUATED = {
    "graduated_ranges": [
        {"from_value": 0, "to_value": 2, "per_unit_amount": "1", "flat_amount": "0"},
        {"from_value": 3, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "0"},
    ]
}


def _bill_event(event: Event) -> list[Fee]:
    return advance_charges.fees_create_for_event(
        external_subscription_id=event.external_subscription_id, transaction_id=event.transaction_id, now=JAN
    )


def _post_batch(api, rows: list[dict[str, Any]], capture) -> Any:
    with capture(execute=True):
        response = api.post("/api/v1/events/batch", {"events": rows}, format="json")
    assert response.status_code == 200, response.content
    return response


def test_graduated_tiers_run_across_the_period_one_invoice_per_event(api, django_capture_on_commit_callbacks):
    """Tiers [0-2] at 1.00, [3+] at 0.50, 20% VAT; four API calls on Jan 5, 6, 7, 8.
    Units before -> after: 0->1, 1->2 (first tier: 1.00 each), 2->3, 3->4 (second: 0.50 each)."""
    make_tax(code="vat_20", rate="20", applied_to_organization=True)
    plan = make_plan(amount_cents=0, charges=[_charge("api_calls", "graduated", GRADUATED)])
    sub = subscribe(plan=plan)
    rows = [
        {
            "transaction_id": f"call_{day}",
            "external_subscription_id": "sub_1",
            "code": "api_calls",
            "timestamp": int(utc(2024, 1, day, 12).timestamp()),
        }
        for day in (5, 6, 7, 8)
    ]
    _post_batch(api, rows[:2], django_capture_on_commit_callbacks)
    _post_batch(api, rows[2:], django_capture_on_commit_callbacks)

    fees = list(
        Fee.objects.filter(subscription=sub, pay_in_advance=True).order_by("pay_in_advance_event_transaction_id")
    )
    assert [(f.pay_in_advance_event_transaction_id, f.units, f.amount) for f in fees] == [
        ("call_5", D(1), D("1.00")),
        ("call_6", D(1), D("1.00")),
        ("call_7", D(1), D("0.50")),
        ("call_8", D(1), D("0.50")),
    ]
    for fee in fees:
        assert fee.events_count == 1
        assert (fee.from_datetime, fee.to_datetime) == (JAN, utc(2024, 2, 1))
        invoice = fee.invoice
        assert invoice.status == InvoiceStatus.FINALIZED
        assert invoice.invoice_type == "subscription"
        assert invoice.number.endswith(f"-{invoice.sequential_id:03d}")
        # 1.00 + 20% = 1.20; 0.50 + 20% = 0.60
        assert invoice.taxes_amount == fee.amount * D("0.2")
        assert invoice.total_amount == fee.amount * D("1.2")
        row = InvoiceSubscription.objects.get(invoice=invoice)
        assert row.invoicing_reason == InvoicingReason.IN_ADVANCE_CHARGE
        assert (row.charges_from_datetime, row.charges_to_datetime) == (JAN, utc(2024, 2, 1))
    assert sorted(Invoice.objects.values_list("sequential_id", flat=True)) == [1, 2, 3, 4]

    # The period's invoice on Feb 1 bills the (zero) subscription fee and no usage again.
    invoice = only_invoice(bill(utc(2024, 2, 1, 1)))
    assert not invoice.fees.filter(charge__isnull=False).exists()
    assert invoice.fees_amount == 0


def test_package_with_free_units_and_a_zero_fee_without_invoice():
    """Packages of 10 units at 5.00 after 5 free units; sum of n: 3, 3, 10.
    0->3: all free, price(3) - price(0) = 0 (fee kept, no invoice);
    3->6: 1 paying unit -> 1 package, 5.00; 6->16: 11 paying units -> 2 packages, 10.00 - 5.00 = 5.00."""
    metric("storage", aggregation_type="sum_agg", field_name="n")
    package = {"amount": "5", "package_size": 10, "free_units": 5}
    plan = make_plan(amount_cents=0, charges=[_charge("storage", "package", package)])
    subscribe(plan=plan)
    amounts = []
    for day, n in ((3, 3), (4, 3), (5, 10)):
        event = make_event(code="storage", timestamp=utc(2024, 1, day), properties={"n": n})
        (fee,) = _bill_event(event)
        amounts.append((fee.units, fee.amount, fee.invoice_id is not None))
    assert amounts == [(D(3), D(0), False), (D(3), D("5.00"), True), (D(10), D("5.00"), True)]
    fee = Fee.objects.get(pay_in_advance_event_transaction_id__isnull=False, units=10)
    assert fee.amount_details["units_before"] == "6"
    assert fee.amount_details["units_after"] == "16"


def test_not_invoiceable_records_the_fee_with_its_taxes_and_no_invoice():
    """Standard 2.00 per call, not invoiceable, 10% tax: a fee of 2.00 with 0.20 of taxes."""
    make_tax(code="vat_10", rate="10", applied_to_organization=True)
    plan = make_plan(amount_cents=0, charges=[_charge("api_calls", "standard", {"amount": "2"}, invoiceable=False)])
    subscribe(plan=plan)
    (fee,) = _bill_event(make_event(timestamp=utc(2024, 1, 9)))
    fee.refresh_from_db()
    assert fee.invoice_id is None
    assert (fee.amount, fee.taxes_amount) == (D("2.00"), D("0.20"))
    assert fee.applied_taxes.get().tax_code == "vat_10"
    assert not Invoice.objects.exists()


def test_unique_count_prices_new_values_only():
    """Standard 2.00 per unique user: a (new), b (new), a (active already), remove b, b (new
    again): 2.00, 2.00, 0, 0, 2.00. Zero fees are recorded without an invoice."""
    metric("users", aggregation_type="unique_count_agg", field_name="user")
    plan = make_plan(amount_cents=0, charges=[_charge("users", "standard", {"amount": "2"})])
    subscribe(plan=plan)
    steps = [("a", None), ("b", None), ("a", None), ("b", "remove"), ("b", None)]
    got = []
    for hour, (user, operation) in enumerate(steps):
        properties = {"user": user} | ({"operation_type": operation} if operation else {})
        (fee,) = _bill_event(make_event(code="users", timestamp=utc(2024, 1, 10, hour), properties=properties))
        got.append((fee.units, fee.amount))
    assert got == [(D(1), D(2)), (D(1), D(2)), (D(0), D(0)), (D(0), D(0)), (D(1), D(2))]
    assert Invoice.objects.count() == 3


def test_events_of_the_same_millisecond_count_in_the_order_they_were_stored(api, django_capture_on_commit_callbacks):
    """A batch sent without timestamps: three calls stamped with one reception instant. Tiers
    [0-2] free, [3+] at 1.00: the first two are free, the third costs 1.00 (not three fees of 0)."""
    tiers = {
        "graduated_ranges": [
            {"from_value": 0, "to_value": 2, "per_unit_amount": "0", "flat_amount": "0"},
            {"from_value": 3, "to_value": None, "per_unit_amount": "1", "flat_amount": "0"},
        ]
    }
    plan = make_plan(amount_cents=0, charges=[_charge("api_calls", "graduated", tiers)])
    subscribe(plan=plan, start=utc(2020, 1, 1))
    rows = [{"transaction_id": f"t{i}", "external_subscription_id": "sub_1", "code": "api_calls"} for i in range(3)]
    _post_batch(api, rows, django_capture_on_commit_callbacks)
    assert len(set(Event.objects.values_list("timestamp", flat=True))) == 1
    fees = Fee.objects.filter(pay_in_advance=True).order_by("pay_in_advance_event_id")
    assert [fee.amount for fee in fees] == [D(0), D(0), D("1.00")]


def test_a_retried_task_bills_nothing_twice():
    plan = make_plan(amount_cents=0, charges=[_charge("api_calls", "standard", {"amount": "2"})])
    subscribe(plan=plan)
    event = make_event(timestamp=utc(2024, 1, 9))
    assert len(_bill_event(event)) == 1
    assert _bill_event(event) == []
    assert Fee.objects.count() == 1
    assert Invoice.objects.count() == 1


def test_ingestion_announces_new_events_of_pay_in_advance_codes_only(api, django_capture_on_commit_callbacks):
    """A batch of a pay-in-advance code and another code: only the first is announced, once; an
    exact replay of the batch is announced no more."""
    metric("storage", aggregation_type="sum_agg", field_name="n")
    plan = make_plan(
        amount_cents=0,
        charges=[
            _charge("api_calls", "standard", {"amount": "1"}, invoiceable=False),
            {
                "billable_metric_id": str(metric("storage").pk),
                "charge_model": "standard",
                "properties": {"amount": "1"},
            },
        ],
    )
    subscribe(plan=plan)
    heard: list[Any] = []

    def listen(sender: Any, *, events: Any, **kwargs: Any) -> None:
        heard.append(list(events))

    events_stored.connect(listen, dispatch_uid="test-listen")
    try:
        rows = [
            {"transaction_id": "a1", "external_subscription_id": "sub_1", "code": "api_calls", "timestamp": 1704800000},
            {"transaction_id": "s1", "external_subscription_id": "sub_1", "code": "storage", "timestamp": 1704800000},
        ]
        _post_batch(api, rows, django_capture_on_commit_callbacks)
        _post_batch(api, rows, django_capture_on_commit_callbacks)
    finally:
        events_stored.disconnect(dispatch_uid="test-listen")
    assert heard == [[("sub_1", "api_calls", "a1")]]
    assert Fee.objects.get().pay_in_advance_event_transaction_id == "a1"


def _batch_queries(api, rows: list[dict[str, Any]]) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert api.post("/api/v1/events/batch", {"events": rows}, format="json").status_code == 200
    return [q["sql"] for q in queries.captured_queries]


@pytest.mark.postgres  # the query counts of the PostgreSQL paths (SQLite aggregates in Python)
def test_a_batch_costs_no_more_queries_with_pay_in_advance_charges(api):
    """The hot path never asks plans: the metric's flag is read inside the INSERT statement, so a
    batch of a pay-in-advance code costs the same queries as a batch of an arrears code (and
    nothing per event); a batch of arrears events is not announced."""
    metric("storage", aggregation_type="sum_agg", field_name="n")
    arrears = {
        "billable_metric_id": str(metric("storage").pk),
        "charge_model": "standard",
        "properties": {"amount": "1"},
    }
    subscribe(plan=make_plan(amount_cents=0, charges=[arrears, _charge("api_calls", "standard", {"amount": "1"})]))
    heard: list[Any] = []

    def listen(sender: Any, *, events: Any, **kwargs: Any) -> None:
        heard.append(list(events))

    def rows(code: str, prefix: str) -> list[dict[str, Any]]:
        return [
            {
                "transaction_id": f"{prefix}{i}",
                "external_subscription_id": "sub_1",
                "code": code,
                "properties": {"n": 1},
            }
            for i in range(50)
        ]

    _batch_queries(api, rows("warm_up", "w"))  # the API key's first use writes its last use
    events_stored.connect(listen, dispatch_uid="test-listen-queries")
    try:
        in_arrears = _batch_queries(api, rows("storage", "s"))
        in_advance = _batch_queries(api, rows("api_calls", "a"))
    finally:
        events_stored.disconnect(dispatch_uid="test-listen-queries")
    assert len(in_advance) == len(in_arrears)
    assert not [sql for sql in in_advance if "plans_" in sql]
    assert sum("INSERT INTO" in sql and "metrics_event" in sql for sql in in_advance) == 1
    assert heard == []  # on_commit never runs inside the test's transaction
    assert not Fee.objects.exists()


def test_events_outside_the_subscription_or_of_other_charges_bill_nothing():
    plan = make_plan(amount_cents=0, charges=[_charge("api_calls", "standard", {"amount": "2"})])
    subscribe(plan=plan, start=utc(2024, 1, 10))
    assert _bill_event(make_event(timestamp=utc(2024, 1, 9))) == []  # before the start
    assert _bill_event(make_event(timestamp=utc(2024, 1, 11), external_subscription_id="other")) == []
    metric("storage", aggregation_type="sum_agg", field_name="n")
    assert _bill_event(make_event(code="storage", timestamp=utc(2024, 1, 11), properties={"n": 1})) == []
    # A sum event without a number has no value to price.
    assert Fee.objects.count() == 0


def test_fees_api_lists_a_fee_without_invoice(api):
    plan = make_plan(amount_cents=0, charges=[_charge("api_calls", "standard", {"amount": "2"}, invoiceable=False)])
    subscribe(plan=plan)
    (fee,) = _bill_event(make_event(timestamp=utc(2024, 1, 9)))
    response = api.get("/api/v1/fees")
    assert response.status_code == 200
    (row,) = response.json()["fees"]
    assert row["lago_id"] == str(fee.pk)
    assert row["lago_invoice_id"] is None
    assert row["pay_in_advance"] is True
    assert row["invoiceable"] is False
    assert row["amount_cents"] == 200
    assert row["external_customer_id"] == "cust_sub_1"


# --- the sweep: announcements lost (broker down, task lost) ---------------------------------------

SWEEP_AT = utc(2024, 1, 10, 12)


def _lost_event(hours_ago: float, transaction_id: str, **fields: Any) -> Event:
    """An event stored but never billed (as if its task was lost), received 5 minutes after its
    timestamp."""
    from datetime import timedelta

    moment = SWEEP_AT - timedelta(hours=hours_ago)
    event = make_event(timestamp=moment, transaction_id=transaction_id, **fields)
    Event.objects.filter(pk=event.pk).update(created_at=moment + timedelta(minutes=5))
    return event


def test_the_sweep_bills_a_missed_event_once_and_a_second_sweep_bills_nothing():
    """Standard 2.00 per call. Events 1 h and 23 h ago lost their task; one 30 h ago is outside
    the 24 h window; one was billed by its task already; one of an arrears-only code is not the
    sweep's business. The sweep bills the two (2.00 each, one invoice each), a rerun nothing."""
    metric("storage", aggregation_type="sum_agg", field_name="n")
    arrears = {
        "billable_metric_id": str(metric("storage").pk),
        "charge_model": "standard",
        "properties": {"amount": "1"},
    }
    plan = make_plan(amount_cents=0, charges=[_charge("api_calls", "standard", {"amount": "2"}), arrears])
    subscribe(plan=plan)
    _lost_event(1, "recent")
    _lost_event(23, "yesterday")
    _lost_event(30, "too_old")
    _bill_event(_lost_event(2, "billed_by_its_task"))
    _lost_event(1, "storage_1", code="storage", properties={"n": 5})
    assert Fee.objects.count() == 1

    assert [row[2] for row in selectors.missed_events(since=utc(2024, 1, 9, 12), until=SWEEP_AT, settled=SWEEP_AT)] == [
        "recent",
        "yesterday",
    ]  # in storage order
    result = advance_charges.fees_sweep_missed(now=SWEEP_AT)
    assert (result.events, result.billed, result.fees, result.failed) == (2, 2, 2, 0)
    billed = Fee.objects.filter(pay_in_advance_event_transaction_id__in=["recent", "yesterday"])
    assert sorted((f.pay_in_advance_event_transaction_id, f.amount) for f in billed) == [
        ("recent", D("2.00")),
        ("yesterday", D("2.00")),
    ]
    assert all(f.invoice.status == InvoiceStatus.FINALIZED for f in billed)
    assert Invoice.objects.count() == 3

    again = advance_charges.fees_sweep_missed(now=SWEEP_AT)
    assert (again.events, again.billed, again.fees) == (0, 0, 0)
    assert Fee.objects.count() == 3
    assert Invoice.objects.count() == 3


def test_the_sweep_leaves_fresh_events_to_their_task_and_skips_events_it_cannot_price():
    """An event received a minute ago is in flight (its task will bill it); a sum event without
    its field has no value to price and is not priced again at every sweep."""
    from datetime import timedelta

    metric("storage", aggregation_type="sum_agg", field_name="n")
    plan = make_plan(
        amount_cents=0,
        charges=[_charge("api_calls", "standard", {"amount": "2"}), _charge("storage", "standard", {"amount": "1"})],
    )
    subscribe(plan=plan)
    fresh = make_event(timestamp=SWEEP_AT - timedelta(minutes=1), transaction_id="fresh")
    Event.objects.filter(pk=fresh.pk).update(created_at=SWEEP_AT - timedelta(minutes=1))
    _lost_event(1, "no_value", code="storage", properties={"other": 1})
    result = advance_charges.fees_sweep_missed(now=SWEEP_AT)
    assert result.events == 0
    assert not Fee.objects.exists()


def test_the_sweep_command(capsys):
    plan = make_plan(amount_cents=0, charges=[_charge("api_calls", "standard", {"amount": "2"}, invoiceable=False)])
    subscribe(plan=plan, start=utc(2020, 1, 1))
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    event = make_event(timestamp=now - timedelta(hours=3), transaction_id="lost")
    Event.objects.filter(pk=event.pk).update(created_at=now - timedelta(hours=3))

    call_command("bill_missed_advance_events", "--dry-run")
    assert "1 event(s) without a fee would be billed" in capsys.readouterr().out
    assert not Fee.objects.exists()
    call_command("bill_missed_advance_events", "--hours", "2")
    assert "0 event(s) without a fee" in capsys.readouterr().out
    call_command("bill_missed_advance_events")
    assert "1 event(s) without a fee: 1 billed (1 fee(s)), 0 failed" in capsys.readouterr().out
    assert Fee.objects.get().pay_in_advance_event_transaction_id == "lost"
    call_command("bill_missed_advance_events")
    assert "0 event(s) without a fee" in capsys.readouterr().out


def test_the_sweep_is_a_periodic_task():
    from django.apps import apps

    (spec,) = [s for s in apps.get_app_config("invoicing").periodic_tasks if "missed" in s.task]
    assert (spec.task, spec.minute) == ("invoicing.tasks.bill_missed_pay_in_advance_events", "*/10")
