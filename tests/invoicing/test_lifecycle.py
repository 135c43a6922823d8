"""Lifecycle amounts as Lago bills them, each worked by hand: upgrade day, backdated starts, the
catch-up policy, plan changes due at the run's instant, day-aligned periods, the frozen
customer snapshot, and starting invoices that survive a lost task."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command

from customers.models import Organization
from invoicing import runs
from invoicing.models import Fee, FeeType, Invoice, InvoiceSubscription, InvoicingReason
from plans.models import Subscription, SubscriptionStatus
from tests.factories.customers import make_customer
from tests.factories.invoicing import bill, events, only_invoice, subscribe, utc
from tests.factories.plans import make_plan, make_subscription, standard_charge

pytestmark = pytest.mark.django_db

D = Decimal


def _reasons(**filters: object) -> list[tuple[str, str, Decimal]]:
    """(reason, from date, total) of every invoice, oldest period first."""
    rows = InvoiceSubscription.objects.filter(**filters).select_related("invoice").order_by("timestamp", "created_at")
    return [(row.invoicing_reason, f"{row.from_datetime:%Y-%m-%d}", row.invoice.total_amount) for row in rows]


# --- 1. The upgrade day belongs to the new plan only -----------------------------------------


def test_upgrade_day_is_billed_once_by_the_new_plan():
    """Lago's guide/subscriptions/upgrades-downgrades: EUR 100 in arrears upgraded on Jan 15 to
    EUR 200 -> 45.16 then 109.68 (app/models/subscription.rb date_diff_with_timezone: one day
    less when upgraded; spec/services/fees/subscription_service_spec.rb)."""
    basic = make_plan(code="basic", amount_cents=10000, amount_currency="EUR")
    premium = make_plan(code="premium", amount_cents=20000, amount_currency="EUR")
    sub = subscribe(plan=basic)  # Jan 1, 2024
    new = make_subscription(customer=sub.customer, plan=premium, external_id=sub.external_id, now=utc(2024, 1, 15, 10))
    old_final = runs.bill_final(subscription_id=sub.pk, actor="test")
    assert old_final is not None
    assert old_final.invoice_subscriptions.get().invoicing_reason == InvoicingReason.UPGRADING
    # Jan 1..14 = 14 days of 31: 100 x 14 / 31 = 45.1612... -> 45.16
    assert old_final.fees.get(fee_type=FeeType.SUBSCRIPTION).amount == D("45.16")
    # Jan 15..31 = 17 days of 31: 200 x 17 / 31 = 109.6774... -> 109.68 (14 + 17 = 31 days, not 32)
    new_invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    assert new_invoice.invoice_subscriptions.get().subscription_id == new.pk
    assert new_invoice.fees.get(fee_type=FeeType.SUBSCRIPTION).amount == D("109.68")


# --- 2. A backdated pay-in-advance start counts as paid --------------------------------------


def test_backdated_pay_in_advance_subscription_is_not_billed_at_creation():
    """Lago's app/services/subscriptions/create_service.rb bills in advance at creation only a
    subscription starting today; a past start is "considered as already paid for the current
    period" (guide/subscriptions/assign-plan)."""
    plan = make_plan(amount_cents=5000, pay_in_advance=True)
    sub = make_subscription(plan=plan, subscription_at=utc(2024, 1, 10), now=utc(2024, 1, 20, 9))
    assert runs.bill_starting(subscription_id=sub.pk, actor="test") is None
    assert bill(utc(2024, 1, 20, 10)).created == 0
    # The next boundary bills February in advance: 50.00 (a full period, 29 of 29 days).
    february = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    assert february.total_amount == D("50")
    assert _reasons() == [(InvoicingReason.SUBSCRIPTION_PERIODIC, "2024-02-01", D("50"))]


def test_pay_in_advance_start_earlier_the_same_day_is_billed():
    """A start earlier the same (local) day is today's start: Lago bills it at creation."""
    plan = make_plan(amount_cents=5000, pay_in_advance=True)
    sub = make_subscription(plan=plan, subscription_at=utc(2024, 1, 20), now=utc(2024, 1, 20, 9))
    starting = runs.bill_starting(subscription_id=sub.pk, actor="test")
    assert starting is not None
    # Jan 20..31 = 12 days of 31: 50 x 12 / 31 = 19.3548... -> 19.35
    assert starting.total_amount == D("19.35")


# --- 3. The catch-up policy ------------------------------------------------------------------


def test_periods_that_ended_before_creation_are_never_billed_in_arrears():
    """Backdated by two and a half months, in arrears: October and November ended before the
    subscription was created (Dec 15) and are never billed; December ends after: billed."""
    plan = make_plan(amount_cents=3100)
    make_subscription(plan=plan, subscription_at=utc(2023, 10, 1), now=utc(2023, 12, 15))
    summary = bill(utc(2024, 2, 1, 0, 10))
    # December and January, each a full month: 31.00 each.
    assert summary.created == 2
    assert _reasons() == [
        (InvoicingReason.SUBSCRIPTION_PERIODIC, "2023-12-01", D("31")),
        (InvoicingReason.SUBSCRIPTION_PERIODIC, "2024-01-01", D("31")),
    ]


def test_periods_that_ended_before_creation_are_never_billed_in_advance():
    """Backdated, in advance: no start invoice (December counts as paid), then January (due Jan 1)
    and February (due Feb 1), each 30.00 paid in advance."""
    plan = make_plan(amount_cents=3000, pay_in_advance=True)
    make_subscription(plan=plan, subscription_at=utc(2023, 10, 1), now=utc(2023, 12, 15))
    assert bill(utc(2024, 2, 1, 0, 10)).created == 2
    assert _reasons() == [
        (InvoicingReason.SUBSCRIPTION_PERIODIC, "2024-01-01", D("30")),
        (InvoicingReason.SUBSCRIPTION_PERIODIC, "2024-02-01", D("30")),
    ]


def test_one_run_after_an_outage_bills_every_missed_period_oldest_first(capsys):
    """Beat stopped for three months: the run on Apr 1 bills January, February and March, each
    on its own invoice with its own dates, numbered in calendar order; a rerun bills nothing."""
    plan = make_plan(amount_cents=3100, charges=[standard_charge(amount="1")])
    sub = subscribe(plan=plan)  # Jan 1, 2024
    events(sub, [utc(2024, 1, 5), utc(2024, 2, 5), utc(2024, 2, 6), utc(2024, 3, 5)])
    call_command("run_invoices", "--at", "2024-04-01T00:10:00Z", "--dry-run")
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("would bill")]
    assert [line.split(": ")[1].split(" .. ")[0] for line in listed] == [
        "subscription_periodic 2024-01-01T00:00:00+00:00",
        "subscription_periodic 2024-02-01T00:00:00+00:00",
        "subscription_periodic 2024-03-01T00:00:00+00:00",
    ]
    assert bill(utc(2024, 4, 1, 0, 10)).created == 3
    # 31 + events x 1: January 32, February 33, March 32.
    assert _reasons() == [
        (InvoicingReason.SUBSCRIPTION_PERIODIC, "2024-01-01", D("32")),
        (InvoicingReason.SUBSCRIPTION_PERIODIC, "2024-02-01", D("33")),
        (InvoicingReason.SUBSCRIPTION_PERIODIC, "2024-03-01", D("32")),
    ]
    numbers = list(Invoice.objects.order_by("invoice_subscriptions__timestamp").values_list("number", flat=True))
    assert numbers == sorted(numbers)
    assert bill(utc(2024, 4, 1, 0, 10)).created == 0


# --- 4. Plan changes due at the run's instant ------------------------------------------------


def test_run_applies_a_downgrade_due_at_its_instant_then_bills_both_plans():
    """A downgrade asked on Jan 15 takes effect Feb 1. With no hourly plans task, the run at
    Feb 1 00:10 makes the switch itself: the old plan's January in arrears (62.00, full month),
    then the new pay-in-advance plan's February at once (31.00, 29 of 29 days)."""
    pro = make_plan(code="pro", amount_cents=6200)
    basic = make_plan(code="basic", amount_cents=3100, pay_in_advance=True)
    sub = subscribe(plan=pro)
    make_subscription(customer=sub.customer, plan=basic, external_id=sub.external_id, now=utc(2024, 1, 15))
    assert bill(utc(2024, 1, 31, 23)).created == 0  # not due yet
    assert bill(utc(2024, 2, 1, 0, 10)).created == 2
    sub.refresh_from_db()
    assert (sub.status, sub.terminated_at) == (SubscriptionStatus.TERMINATED, utc(2024, 2, 1))
    new = Subscription.objects.get(plan=basic)
    assert (new.status, new.started_at) == (SubscriptionStatus.ACTIVE, utc(2024, 2, 1))
    assert _reasons() == [
        (InvoicingReason.SUBSCRIPTION_TERMINATING, "2024-01-01", D("62")),
        (InvoicingReason.SUBSCRIPTION_STARTING, "2024-02-01", D("31")),
    ]
    assert bill(utc(2024, 2, 1, 0, 10)).created == 0


def test_run_applies_an_ending_at_due_at_its_instant():
    """ending_at Jan 20 12:00 and no plans task: the run at Jan 20 13:00 terminates it and bills
    the final period: Jan 1..20 = 20 days of 31, 31 x 20 / 31 = 20.00."""
    plan = make_plan(amount_cents=3100)
    sub = subscribe(plan=plan, ending_at=utc(2024, 1, 20, 12))
    invoice = only_invoice(bill(utc(2024, 1, 20, 13)))
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.TERMINATED
    assert invoice.total_amount == D("20")


# --- 5. Day-aligned periods ------------------------------------------------------------------


def test_period_dates_are_day_aligned_and_usage_starts_at_the_start_instant():
    """An anniversary subscription started Jan 10 at 01:00: its period and fee run from Jan 10
    00:00 (as Lago), the event at 00:30 (before the start) is not billed, the one at 01:30 is.
    31.00 for the full period + 1 event x 1.00 = 32.00."""
    plan = make_plan(amount_cents=3100, charges=[standard_charge(amount="1")])
    sub = subscribe(plan=plan, start=utc(2024, 1, 10, 1), billing_time="anniversary")
    events(sub, [utc(2024, 1, 10, 0, 30), utc(2024, 1, 10, 1, 30)])
    invoice = only_invoice(bill(utc(2024, 2, 10, 0, 10)))
    period = invoice.invoice_subscriptions.get()
    assert (period.from_datetime, period.to_datetime) == (utc(2024, 1, 10), utc(2024, 2, 10))
    fees = {fee.fee_type: fee for fee in invoice.fees.all()}
    assert fees[FeeType.SUBSCRIPTION].from_datetime == utc(2024, 1, 10)
    assert fees[FeeType.SUBSCRIPTION].amount == D("31")
    assert fees[FeeType.CHARGE].units == 1
    assert invoice.total_amount == D("32")


# --- 6. The frozen snapshot does not depend on the path --------------------------------------


def test_customer_snapshot_is_the_same_whichever_path_finalizes():
    """A customer without a timezone, the organization in Europe/Paris: the run's invoice and a
    draft finalized later both freeze the customer's own (empty) timezone."""
    from invoicing import services

    organization = Organization.current()
    organization.timezone = "Europe/Paris"
    organization.save()
    plan = make_plan(amount_cents=1000)
    direct = subscribe(plan=plan, external_id="direct")
    graced = subscribe(plan=plan, external_id="graced", customer=make_customer(external_id="g", invoice_grace_period=3))
    bill(utc(2024, 2, 1, 0, 10))
    finalized = Invoice.objects.get(customer=direct.customer)
    draft = Invoice.objects.get(customer=graced.customer)
    services.invoice_finalize(invoice=draft, actor="test", now=utc(2024, 2, 2))
    draft.refresh_from_db()
    assert finalized.customer_snapshot["customer"]["timezone"] == ""
    assert draft.customer_snapshot["customer"]["timezone"] == ""
    direct.customer.refresh_from_db()
    assert direct.customer.timezone == ""
    assert direct.customer.applicable_timezone() == "Europe/Paris"


# --- issue 19: a starting invoice is never lost ----------------------------------------------


def test_start_invoice_lost_with_its_task_is_billed_by_the_next_run_once(django_capture_on_commit_callbacks):
    """The broker is down when the pay-in-advance subscription is created: its post-commit
    announcement never runs. The next run bills the 50.00 start invoice (Jan 1..31 = 31 of 31
    days: 50 x 31 / 31), once."""
    plan = make_plan(amount_cents=5000, pay_in_advance=True)
    with django_capture_on_commit_callbacks(execute=False) as lost:
        sub = make_subscription(plan=plan, subscription_at=utc(2024, 1, 1), now=utc(2024, 1, 1))
    assert lost  # the announcement that was never delivered
    assert Invoice.objects.count() == 0
    invoice = only_invoice(bill(utc(2024, 1, 1, 1, 10)))
    assert invoice.invoice_subscriptions.get().invoicing_reason == InvoicingReason.SUBSCRIPTION_STARTING
    assert invoice.total_amount == D("50")
    assert bill(utc(2024, 1, 1, 2, 10)).created == 0
    assert runs.bill_starting(subscription_id=sub.pk, actor="late task") is None
    assert Fee.objects.filter(fee_type=FeeType.SUBSCRIPTION).count() == 1


# --- 7. Grouped by every key; recurring pay-in-advance units billed again at renewal ---------


def test_grouped_charge_groups_by_every_grouped_by_key():
    """grouped_by ["region", "tier"]: one fee per (region, tier), not per region only.
    eu/pro 2 x 1.00 = 2.00, eu/free 1 x 1.00 = 1.00, us/pro 3 x 1.00 = 3.00; 10.00 + 6.00 = 16.00."""
    charge = standard_charge(amount="1")
    charge["properties"]["grouped_by"] = ["region", "tier"]
    plan = make_plan(amount_cents=1000, charges=[charge])
    sub = subscribe(plan=plan)
    events(sub, [utc(2024, 1, 5)] * 2, region="eu", tier="pro")
    events(sub, [utc(2024, 1, 6)], region="eu", tier="free")
    events(sub, [utc(2024, 1, 7)] * 3, region="us", tier="pro")
    invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    groups = {
        (fee.grouped_by["region"], fee.grouped_by["tier"]): fee.amount
        for fee in invoice.fees.filter(fee_type=FeeType.CHARGE)
    }
    assert groups == {("eu", "pro"): D("2"), ("eu", "free"): D("1"), ("us", "pro"): D("3")}
    assert invoice.total_amount == D("16")


def test_recurring_pay_in_advance_charge_bills_carried_over_units_at_renewal():
    """Seats (a recurring sum) at 10.00 each, paid in advance. 3 seats added Jan 5: 30.00 at once.
    At the Feb 1 renewal the 3 seats carried over are billed for February: 3 x 10.00 = 30.00
    (Lago's Invoices::CalculateFeesService prices pay-in-advance recurring charges at renewal).
    2 more seats on Feb 10 cost price(5) - price(3) = 50.00 - 30.00 = 20.00."""
    from invoicing import advance_charges
    from tests.factories.metrics import make_event, make_metric

    make_metric(code="seats", aggregation_type="sum_agg", field_name="seats", recurring=True)
    charge = standard_charge("seats", amount="10", pay_in_advance=True, invoiceable=True)
    plan = make_plan(amount_cents=0, charges=[charge])
    sub = subscribe(plan=plan)

    def seats(day: object, count: int) -> list[Fee]:
        event = make_event(
            code="seats", external_subscription_id=sub.external_id, timestamp=day, properties={"seats": count}
        )
        return advance_charges.fees_create_for_event(
            external_subscription_id=sub.external_id, transaction_id=event.transaction_id
        )

    assert [fee.amount for fee in seats(utc(2024, 1, 5), 3)] == [D("30")]
    renewal = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    carried = renewal.fees.get(fee_type=FeeType.CHARGE)
    assert (carried.units, carried.amount, carried.pay_in_advance) == (D("3"), D("30"), True)
    assert (carried.from_datetime, carried.to_datetime) == (utc(2024, 2, 1), utc(2024, 3, 1))
    assert [fee.amount for fee in seats(utc(2024, 2, 10), 2)] == [D("20")]
