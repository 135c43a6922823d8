"""What a termination does, as Lago's subscription `on_termination_invoice` (generate | skip) and
`on_termination_credit_note` (credit | refund | offset | skip) say
(app/services/subscriptions/terminate_service.rb, app/services/credit_notes/create_from_termination.rb)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing import runs
from invoicing.models import CreditNote, Invoice, InvoicingReason
from plans import services as plan_services
from plans.errors import PlansError
from tests.factories.invoicing import bill, subscribe, utc
from tests.factories.plans import make_plan

pytestmark = pytest.mark.django_db

D = Decimal


def _advance_subscription(*, paid: str | None = None):
    """A 31.00 plan paid in advance from 2024-01-01: January's 31.00 invoiced at the start."""
    plan = make_plan(code="advance", amount_cents=3100, pay_in_advance=True)
    sub = subscribe(plan=plan)
    start = runs.bill_starting(subscription_id=sub.pk, actor="test")
    assert start is not None and start.total_amount == D("31")
    if paid is not None:
        Invoice.objects.filter(pk=start.pk).update(total_paid_amount=D(paid))
    return sub


def _terminate(sub, **options):
    """Terminated on Jan 11 at noon, then its final billing as the after-commit task runs it."""
    terminated = plan_services.subscription_terminate(subscription=sub, now=utc(2024, 1, 11, 12), **options)
    runs.bill_final(subscription_id=sub.pk, actor="test")
    return terminated


def test_by_default_the_final_invoice_is_generated_and_the_unused_days_credited():
    sub = _terminate(_advance_subscription())

    assert (sub.on_termination_invoice, sub.on_termination_credit_note) == ("generate", "")
    final = Invoice.objects.filter(invoice_subscriptions__invoicing_reason=InvoicingReason.SUBSCRIPTION_TERMINATING)
    assert final.count() == 1
    # Jan 1..11 used (the termination day counts), 20 of 31 days unused: 31 x 20 / 31 = 20.00.
    note = CreditNote.objects.get()
    assert (note.reason, note.credit_amount, note.refund_amount) == ("order_change", D("20"), D("0"))


def test_skip_invoice_bills_no_last_period_but_still_credits_and_later_runs_bill_nothing():
    sub = _terminate(_advance_subscription(), on_termination_invoice="skip")

    assert sub.on_termination_invoice == "skip"
    assert not Invoice.objects.filter(invoice_subscriptions__invoicing_reason=InvoicingReason.SUBSCRIPTION_TERMINATING)
    assert CreditNote.objects.get().credit_amount == D("20")
    # The task running again (acks_late, a retried task) credits nothing more.
    assert runs.bill_final(subscription_id=sub.pk, actor="test") is None
    assert CreditNote.objects.count() == 1
    # The hourly run finds nothing due for it, at the period end or later.
    assert bill(utc(2024, 2, 1, 0, 10)).created == 0
    assert bill(utc(2024, 3, 1, 0, 10)).created == 0
    assert Invoice.objects.count() == 1


def test_skip_credit_note_issues_none():
    sub = _terminate(_advance_subscription(), on_termination_credit_note="skip")

    assert sub.on_termination_credit_note == "skip"
    assert not CreditNote.objects.exists()


@pytest.mark.parametrize("mode", ["refund", "offset"])
def test_refund_refunds_what_was_paid_and_credits_the_rest(mode):
    # 31.00 paid in full: the 20.00 unused is refunded whole.
    _terminate(_advance_subscription(paid="31"), on_termination_credit_note=mode)

    note = CreditNote.objects.get()
    assert (note.credit_amount, note.refund_amount, note.total_amount) == (D("0"), D("20"), D("20"))


def test_refund_of_a_partly_paid_invoice_refunds_the_paid_part_only():
    # 5.00 paid of 31.00: 5.00 refunded, 15.00 credited.
    _terminate(_advance_subscription(paid="5"), on_termination_credit_note="refund")

    note = CreditNote.objects.get()
    assert (note.credit_amount, note.refund_amount) == (D("15"), D("5"))


def test_an_unknown_choice_is_a_422_and_terminates_nothing():
    sub = _advance_subscription()

    with pytest.raises(PlansError) as refused:
        _terminate(sub, on_termination_invoice="later", on_termination_credit_note="gift")

    assert refused.value.details == {
        "on_termination_invoice": ["value_is_invalid"],
        "on_termination_credit_note": ["value_is_invalid"],
    }
    sub.refresh_from_db()
    assert sub.status == "active"


def test_a_plan_paid_in_arrears_keeps_no_credit_note_choice():
    plan = make_plan(code="arrears", amount_cents=3100)
    sub = plan_services.subscription_terminate(
        subscription=subscribe(plan=plan), on_termination_credit_note="refund", now=utc(2024, 1, 11, 12)
    )

    assert sub.on_termination_credit_note == ""
