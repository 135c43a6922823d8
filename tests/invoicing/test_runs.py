"""Billing runs: timezones, grace periods and late events, reruns, numbering, upgrades."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from customers.models import DocumentNumbering, Organization
from invoicing import runs, services
from invoicing.models import Invoice, InvoiceEvent, InvoiceStatus, InvoicingReason
from metrics.models import Event
from tests.factories.customers import make_customer
from tests.factories.invoicing import amounts, bill, events, only_invoice, subscribe, utc
from tests.factories.plans import make_plan, make_subscription, standard_charge

pytestmark = pytest.mark.django_db

D = Decimal


def _plan():
    return make_plan(amount_cents=1000, charges=[standard_charge(amount="1")])


def test_customers_are_billed_at_their_own_midnight():
    plan = _plan()
    tokyo = subscribe(
        plan=plan,
        external_id="tokyo",
        customer=make_customer(external_id="jp", timezone="Asia/Tokyo"),
        start=utc(2023, 12, 31, 15),  # Jan 1 00:00 in Tokyo
    )
    la = subscribe(
        plan=plan,
        external_id="la",
        customer=make_customer(external_id="us", timezone="America/Los_Angeles"),
        start=utc(2024, 1, 1, 8),  # Jan 1 00:00 in Los Angeles
    )
    # Tokyo's January ends at 2024-01-31T15:00Z: one second before counts, the boundary does not.
    events(tokyo, [utc(2024, 1, 31, 14, 59, 59), utc(2024, 1, 31, 15)])
    # Los Angeles' January ends at 2024-02-01T08:00Z.
    events(la, [utc(2024, 1, 1, 8), utc(2024, 2, 1, 7, 59, 59), utc(2024, 2, 1, 8)])

    first = bill(utc(2024, 1, 31, 15, 10))  # after Tokyo's midnight, before LA's
    tokyo_invoice = only_invoice(first)
    assert tokyo_invoice.invoice_subscriptions.get().subscription_id == tokyo.pk
    assert tokyo_invoice.fees.get(fee_type="charge").units == 1
    assert tokyo_invoice.total_amount == D("11")  # 10 + 1 event x 1
    assert str(tokyo_invoice.issuing_date) == "2024-02-01"  # the local date

    second = bill(utc(2024, 2, 1, 8, 10))
    la_invoice = only_invoice(second)
    assert second.skipped == 1  # Tokyo, billed already
    assert la_invoice.fees.get(fee_type="charge").units == 2
    assert la_invoice.total_amount == D("12")  # 10 + 2 events x 1
    assert str(la_invoice.issuing_date) == "2024-02-01"
    period = la_invoice.invoice_subscriptions.get()
    assert (period.from_datetime, period.to_datetime) == (utc(2024, 1, 1, 8), utc(2024, 2, 1, 8))
    assert bill(utc(2024, 2, 1, 9)).created == 0
    assert Invoice.objects.count() == 2

    # The events at the boundaries belong to February, each customer's own.
    tokyo_february = only_invoice(bill(utc(2024, 2, 29, 15, 10)))  # Mar 1 00:10 in Tokyo
    assert tokyo_february.invoice_subscriptions.get().subscription_id == tokyo.pk
    assert (tokyo_february.fees.get(fee_type="charge").units, tokyo_february.total_amount) == (1, D("11"))
    la_february = only_invoice(bill(utc(2024, 3, 1, 8, 10)))  # Mar 1 00:10 in Los Angeles
    assert la_february.invoice_subscriptions.get().subscription_id == la.pk
    assert (la_february.fees.get(fee_type="charge").units, la_february.total_amount) == (1, D("11"))


def test_grace_period_draft_is_refreshed_by_a_late_event_then_finalized():
    customer = make_customer(external_id="graceful", invoice_grace_period=3)
    sub = subscribe(plan=_plan(), customer=customer)
    events(sub, [utc(2024, 1, 10)] * 2)
    draft = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    assert (draft.status, draft.number) == (InvoiceStatus.DRAFT, "TOL-DRAFT")
    assert draft.total_amount == D("12")  # 10 + 2 x 1
    assert str(draft.issuing_date) == "2024-02-04"  # billing date + 3 days of grace

    # A late event for January arrives after the draft was computed.
    events(sub, [utc(2024, 1, 31, 23)])
    Event.objects.filter(timestamp=utc(2024, 1, 31, 23)).update(created_at=draft.updated_at + timedelta(seconds=1))
    counts = services.invoices_finalize_due(now=utc(2024, 2, 2))  # grace not over yet
    assert counts == {"refreshed": 1, "finalized": 0, "failed": 0}
    draft.refresh_from_db()
    assert (draft.status, draft.total_amount) == (InvoiceStatus.DRAFT, D("13"))
    assert InvoiceEvent.objects.filter(invoice=draft, kind="refreshed").count() == 1

    counts = services.invoices_finalize_due(now=utc(2024, 2, 4, 0, 20))
    assert counts["finalized"] == 1
    draft.refresh_from_db()
    assert (draft.status, draft.number, draft.total_amount) == (InvoiceStatus.FINALIZED, "TOL-001-001", D("13"))
    assert draft.customer_snapshot["customer"]["external_id"] == "graceful"
    assert draft.customer_snapshot["organization"]["name"] == Organization.current().name
    assert str(draft.payment_due_date) == "2024-02-04"


def test_a_finalized_period_never_changes():
    sub = subscribe(plan=_plan())
    events(sub, [utc(2024, 1, 10)])
    invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    before = amounts(invoice)
    fees_before = list(invoice.fees.values_list("id", "amount"))
    events(sub, [utc(2024, 1, 20)] * 5)  # late, after finalization
    assert bill(utc(2024, 2, 1, 0, 10)).created == 0
    services.invoice_refresh(invoice=invoice, actor="test")
    services.invoice_finalize(invoice=invoice, actor="test")
    services.invoices_finalize_due(now=utc(2024, 2, 10))
    call_command("run_invoices", "--at", "2024-02-01T00:10:00Z", stdout=open("/dev/null", "w"))
    assert amounts(invoice) == before
    assert list(invoice.fees.values_list("id", "amount")) == fees_before


def test_run_invoices_command_reports_and_is_a_no_op_the_second_time(capsys):
    sub = subscribe(plan=_plan())
    events(sub, [utc(2024, 1, 10)])
    call_command("run_invoices", "--at", "2024-02-01T00:10:00Z", "--dry-run")
    assert Invoice.objects.count() == 0
    assert "would bill sub_1" in capsys.readouterr().out
    call_command("run_invoices", "--at", "2024-02-01T00:10:00Z")
    assert "1 invoices created, 0 skipped (already billed), 0 failed" in capsys.readouterr().out
    call_command("run_invoices", "--at", "2024-02-01T00:10:00Z", "--subscription", "sub_1")
    assert "0 invoices created, 1 skipped (already billed), 0 failed" in capsys.readouterr().out


def test_per_organization_numbering():
    organization = Organization.current()
    organization.document_numbering = DocumentNumbering.PER_ORGANIZATION
    organization.document_number_prefix = "ACME"
    organization.save()
    plan = _plan()
    subscribe(plan=plan, external_id="a")
    subscribe(plan=plan, external_id="b")
    summary = bill(utc(2024, 2, 1, 0, 10))
    numbers = sorted(Invoice.objects.filter(pk__in=summary.invoice_ids).values_list("number", flat=True))
    assert numbers == ["ACME-202402-001", "ACME-202402-002"]


def test_per_customer_numbering_counts_each_customer():
    plan = _plan()
    first = subscribe(plan=plan, external_id="a")
    subscribe(plan=plan, external_id="b")
    make_subscription(
        customer=first.customer,
        plan=make_plan(code="other", amount_cents=100),
        external_id="a2",
        subscription_at=utc(2024, 1, 1),
        now=utc(2024, 1, 1),
    )
    bill(utc(2024, 2, 1, 0, 10))
    numbers = sorted(Invoice.objects.values_list("customer__external_id", "number"))
    assert numbers == [("cust_a", "TOL-001-001"), ("cust_a", "TOL-001-002"), ("cust_b", "TOL-002-001")]


def test_upgrade_bills_the_old_plan_up_to_the_switch():
    old = make_plan(code="basic", amount_cents=3100, charges=[standard_charge(amount="1")])
    new = make_plan(code="pro", amount_cents=6200)
    sub = subscribe(plan=old)
    events(sub, [utc(2024, 1, 5)] * 2 + [utc(2024, 1, 20)])
    upgraded = make_subscription(customer=sub.customer, plan=new, external_id=sub.external_id, now=utc(2024, 1, 11, 12))
    assert upgraded.previous_subscription_id == sub.pk
    invoice = runs.bill_final(subscription_id=sub.pk, actor="test")
    assert invoice.invoice_subscriptions.get().invoicing_reason == InvoicingReason.UPGRADING
    fees = {fee.fee_type: fee for fee in invoice.fees.all()}
    # The switch day belongs to the new plan only (Lago's app/models/subscription.rb
    # date_diff_with_timezone, one day less when upgraded): Jan 1..10 = 10 days, 31 x 10 / 31 = 10;
    # 2 events before the switch.
    assert fees["subscription"].amount == D("10")
    assert fees["charge"].units == 2
    # February: the new plan bills Jan 11..31 (21 days: 62 x 21 / 31 = 42) and its usage.
    new_invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    new_fees = {fee.fee_type: fee for fee in new_invoice.fees.all()}
    assert new_fees["subscription"].amount == D("42")


def test_upgrade_from_a_pay_in_advance_plan_credits_the_unused_days(monkeypatch):
    from invoicing import credit_notes

    calls = []
    monkeypatch.setattr(
        credit_notes,
        "credit_note_create_for_unused_subscription_fee",
        lambda *, fee, amount, actor, **options: calls.append((fee.amount, amount)),
    )
    old = make_plan(code="basic", amount_cents=3100, pay_in_advance=True)
    new = make_plan(code="pro", amount_cents=6200, pay_in_advance=True)
    sub = subscribe(plan=old)
    runs.bill_starting(subscription_id=sub.pk, actor="test")  # 31 paid for January
    make_subscription(customer=sub.customer, plan=new, external_id=sub.external_id, now=utc(2024, 1, 11, 12))
    runs.bill_final(subscription_id=sub.pk, actor="test")
    # 10 days used of 31 paid (the switch day is the new plan's): 31 x 21 / 31 = 21 credited.
    assert calls == [(D("31"), D("21"))]
