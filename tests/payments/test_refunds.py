"""Credit note refunds (against localstripe): a Stripe-collected invoice credited with a refund
gets a Stripe Refund of the right amount (USD, JPY, BHD) and the note ends `succeeded`; retries
never refund twice; money collected by hand is left to finance; the signal follows the commit."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
from django.db import transaction
from django.utils import timezone

from invoicing import credit_note_refunds
from invoicing.errors import InvoicingError
from invoicing.models import CreditNote, InvoiceEvent
from invoicing.signals import credit_note_refund_requested, invoice_finalized
from payments import refunds, services, tasks
from payments.models import Payment, PaymentStatus, Refund, RefundStatus
from tests.factories.credit_notes import fee_of, make_credit_note, make_invoice
from tests.factories.customers import make_customer

from .conftest import CARD_DECLINED_ON_CHARGE, LOCALSTRIPE_SECRET_KEY, make_card

pytestmark = pytest.mark.stripe

D = Decimal


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path  # the credit note PDFs rendered after commit


def collected_invoice(customer, fees, django_capture_on_commit_callbacks, currency="USD"):
    """A finalized invoice collected through Stripe, as invoicing then payments do it."""
    invoice = make_invoice(customer=customer, currency=currency, fees=[{"amount": amount} for amount in fees])
    with django_capture_on_commit_callbacks(execute=True):
        invoice_finalized.send(sender=type(invoice), invoice_id=invoice.pk)
    invoice.refresh_from_db()
    return invoice


def credit(invoice, django_capture_on_commit_callbacks, *, items, **amounts) -> CreditNote:
    """A note through the service, its after-commit work (signal, task) run."""
    with django_capture_on_commit_callbacks(execute=True):
        note = make_credit_note(invoice=invoice, items=[(fee_of(invoice, i), a) for i, a in items], **amounts)
    note.refresh_from_db()
    return note


def stripe_refunds(payment: Payment) -> list[dict]:
    found = stripe.Refund.list(payment_intent=payment.provider_payment_id, api_key=LOCALSTRIPE_SECRET_KEY, limit=100)
    return [refund.to_dict() for refund in found.auto_paging_iter()]


def kinds(note: CreditNote) -> list[str]:
    events = InvoiceEvent.objects.filter(credit_note=note).exclude(kind="credit_note_pdf_generated")
    return list(events.values_list("kind", flat=True))


def test_usd_refund_goes_back_to_the_card(stripe_customer, django_capture_on_commit_callbacks):
    invoice = collected_invoice(stripe_customer(), ["100.00"], django_capture_on_commit_callbacks)
    payment = invoice.payments.get()
    assert (payment.status, invoice.total_paid_amount) == (PaymentStatus.SUCCEEDED, D("100.00"))

    # 50.00 of the fee credited: 20.00 as credit for next invoices, 30.00 back to the card.
    note = credit(
        invoice, django_capture_on_commit_callbacks, items=[(0, "50.00")], credit_amount="20.00", refund_amount="30.00"
    )

    assert note.refund_status == "succeeded"
    assert note.refunded_at is not None
    assert (note.credit_status, note.balance_amount) == ("available", D("20.00"))
    refund = note.refunds.get()
    assert (refund.status, refund.amount, refund.currency, refund.payment) == ("succeeded", D("30.00"), "USD", payment)
    assert refund.provider_refund_id.startswith("re_")
    assert refund.idempotency_key == f"tollgate:credit_note:{note.pk}:refund:1"
    [at_stripe] = stripe_refunds(payment)
    assert (at_stripe["id"], at_stripe["amount"], at_stripe["currency"]) == (refund.provider_refund_id, 3000, "usd")
    assert at_stripe["metadata"]["credit_note_id"] == str(note.pk)
    assert kinds(note) == ["credit_note_created", "credit_note_refund_submitted", "credit_note_refund_succeeded"]
    # The invoice keeps what it was paid; the refund lives on the note (as Lago).
    invoice.refresh_from_db()
    assert (invoice.total_paid_amount, invoice.payment_status) == (D("100.00"), "succeeded")


def test_jpy_refund_in_yen(stripe_customer, django_capture_on_commit_callbacks):
    invoice = collected_invoice(stripe_customer(currency="JPY"), ["4980"], django_capture_on_commit_callbacks, "JPY")

    note = credit(invoice, django_capture_on_commit_callbacks, items=[(0, "1980")], refund_amount="1980")

    assert note.refund_status == "succeeded"
    [at_stripe] = stripe_refunds(invoice.payments.get())
    assert (at_stripe["amount"], at_stripe["currency"]) == (1980, "jpy")  # zero-decimal: yen as they are
    assert note.refunds.get().amount == D("1980")


def test_bhd_full_refund_gives_back_what_the_card_paid(stripe_customer, django_capture_on_commit_callbacks):
    # BHD 10.005 was charged as 10010 (Stripe wants a final 0), so the payment holds 10.010.
    invoice = collected_invoice(stripe_customer(currency="BHD"), ["10.005"], django_capture_on_commit_callbacks, "BHD")
    assert invoice.payments.get().amount == D("10.010")

    note = credit(invoice, django_capture_on_commit_callbacks, items=[(0, "10.005")], refund_amount="10.005")

    # Rounded up as the collection was: 10.005 -> 10010, exactly what the card paid.
    [at_stripe] = stripe_refunds(invoice.payments.get())
    assert at_stripe["amount"] == 10010
    assert (note.refund_status, note.refunds.get().amount) == ("succeeded", D("10.010"))


def test_retried_task_and_resent_signal_never_refund_twice(stripe_customer, django_capture_on_commit_callbacks):
    invoice = collected_invoice(stripe_customer(), ["40.00"], django_capture_on_commit_callbacks)
    note = credit(invoice, django_capture_on_commit_callbacks, items=[(0, "40.00")], refund_amount="40.00")
    payment = invoice.payments.get()
    assert len(stripe_refunds(payment)) == 1

    # The task again, the signal again.
    tasks.refund_credit_note.delay(str(note.pk))
    with django_capture_on_commit_callbacks(execute=True):
        credit_note_refund_requested.send(sender=CreditNote, credit_note_id=note.pk)
    # A worker that died after Stripe refunded but before it stored the answer: the row is still
    # pending with no Stripe id, and so is the note. The retry finds Stripe's refund by its metadata.
    first = note.refunds.get()
    Refund.objects.filter(pk=first.pk).update(status=RefundStatus.PENDING, provider_refund_id="", refunded_at=None)
    CreditNote.objects.filter(pk=note.pk).update(refund_status="pending", refunded_at=None)
    tasks.refund_credit_note.delay(str(note.pk))

    [at_stripe] = stripe_refunds(payment)
    assert at_stripe["amount"] == 4000
    refund = note.refunds.get()
    assert (refund.status, refund.provider_refund_id) == ("succeeded", first.provider_refund_id)
    note.refresh_from_db()
    assert note.refund_status == "succeeded"


def test_refund_above_what_was_paid_is_refused(stripe_customer):
    customer = stripe_customer()
    invoice = make_invoice(customer=customer, fees=[{"amount": "60.00"}, {"amount": "40.00"}])
    unpaid = make_invoice(customer=customer, fees=[{"amount": "10.00"}])
    services.payment_create_manual(invoice_id=invoice.pk, amount_cents=3000, reference="WIRE-3")
    invoice.refresh_from_db()

    # 30.00 paid of 100.00: a 50.00 refund is more than was paid; nothing was paid on `unpaid`.
    with pytest.raises(InvoicingError) as above:
        make_credit_note(invoice=invoice, items=[(fee_of(invoice, 0), "50.00")], refund_amount="50.00")
    with pytest.raises(InvoicingError) as unpaid_refused:
        make_credit_note(invoice=unpaid, items=[(fee_of(unpaid, 0), "10.00")], refund_amount="10.00")

    assert above.value.details == {"refund_amount_cents": ["higher_than_remaining_invoice_amount"]}
    assert unpaid_refused.value.details == {"refund_amount_cents": ["cannot_refund_unpaid_invoice"]}
    assert not CreditNote.objects.exists()
    assert not Refund.objects.exists()


def test_two_notes_refund_one_payment_up_to_what_it_took(stripe_customer, django_capture_on_commit_callbacks):
    invoice = collected_invoice(stripe_customer(), ["60.00", "40.00"], django_capture_on_commit_callbacks)

    first = credit(invoice, django_capture_on_commit_callbacks, items=[(0, "60.00")], refund_amount="60.00")
    second = credit(invoice, django_capture_on_commit_callbacks, items=[(1, "40.00")], refund_amount="40.00")

    assert (first.refund_status, second.refund_status) == ("succeeded", "succeeded")
    assert sorted(r["amount"] for r in stripe_refunds(invoice.payments.get())) == [4000, 6000]


def test_money_collected_by_hand_is_left_to_finance(stripe_api, django_capture_on_commit_callbacks):
    customer = make_customer(external_id="wire", payment_provider="manual")
    invoice = make_invoice(customer=customer, fees=[{"amount": "80.00"}])
    services.payment_create_manual(invoice_id=invoice.pk, amount_cents=8000, reference="WIRE-1")
    invoice.refresh_from_db()

    note = credit(invoice, django_capture_on_commit_callbacks, items=[(0, "25.00")], refund_amount="25.00")

    assert (note.refund_status, note.refunded_at) == ("pending", None)
    assert not note.refunds.exists()
    assert kinds(note) == ["credit_note_created"]
    # Finance wires the money back and marks it paid (the admin action's service).
    credit_note_refunds.credit_note_refund_mark_paid(credit_note=note, actor="admin:finance", reason="WIRE-BACK-1")
    note.refresh_from_db()
    assert note.refund_status == "succeeded"
    assert note.refunded_at is not None


def test_stripe_refund_cannot_be_marked_paid_by_hand(stripe_customer, django_capture_on_commit_callbacks):
    invoice = collected_invoice(stripe_customer(), ["10.00"], django_capture_on_commit_callbacks)
    note = credit(invoice, django_capture_on_commit_callbacks, items=[(0, "10.00")], refund_amount="10.00")

    with pytest.raises(InvoicingError) as refused:
        credit_note_refunds.credit_note_refund_mark_paid(credit_note=note, actor="admin:finance")

    assert refused.value.code == "invalid_refund_status"  # Stripe already refunded it


def test_part_collected_by_hand_is_left_to_finance(stripe_customer, django_capture_on_commit_callbacks):
    """40.00 wired, 60.00 by card: a refund the card payment can cover goes back to the card; one
    it cannot is left whole to finance (never half by card, half by hand)."""
    customer = stripe_customer()
    invoice = make_invoice(customer=customer, fees=[{"amount": "50.00"}, {"amount": "50.00"}])
    services.payment_create_manual(invoice_id=invoice.pk, amount_cents=4000, reference="WIRE-2")
    with django_capture_on_commit_callbacks(execute=True):
        invoice_finalized.send(sender=type(invoice), invoice_id=invoice.pk)
    card = invoice.payments.get(provider="stripe")
    assert (card.status, card.amount) == ("succeeded", D("60.00"))

    # 65.00 to refund, the card paid 60.00: left whole to finance.
    too_big = credit(
        invoice, django_capture_on_commit_callbacks, items=[(0, "50.00"), (1, "15.00")], refund_amount="65.00"
    )
    fits = credit(invoice, django_capture_on_commit_callbacks, items=[(1, "10.00")], refund_amount="10.00")

    assert (too_big.refund_status, too_big.refunds.count()) == ("pending", 0)
    assert fits.refund_status == "succeeded"
    assert [r["amount"] for r in stripe_refunds(card)] == [1000]


def test_refund_stripe_refuses_fails_with_the_reason(stripe_customer, django_capture_on_commit_callbacks):
    """Stripe refuses to refund a PaymentIntent that never took money (here: a ledger that says
    otherwise). The note ends failed with Stripe's message; finance may then refund by hand."""
    invoice = collected_invoice(
        stripe_customer(payment_method=make_card(CARD_DECLINED_ON_CHARGE)),
        ["20.00"],
        django_capture_on_commit_callbacks,
    )
    Payment.objects.filter(invoice=invoice).update(status=PaymentStatus.SUCCEEDED, paid_at=timezone.now())
    invoice.total_paid_amount = D("20.00")
    invoice.save(update_fields=["total_paid_amount"])

    note = credit(invoice, django_capture_on_commit_callbacks, items=[(0, "20.00")], refund_amount="20.00")

    refund = note.refunds.get()
    assert refund.status == "failed"
    assert "Cannot refund a failed payment" in refund.failure_reason
    assert note.refund_status == "failed"
    assert note.refunded_at is None
    failed = InvoiceEvent.objects.get(credit_note=note, kind="credit_note_refund_failed")
    assert "Cannot refund a failed payment" in failed.payload["reason"]
    # A retried task changes nothing (a failed refund is not sent again by itself).
    tasks.refund_credit_note.delay(str(note.pk))
    assert Refund.objects.filter(credit_note=note).count() == 1

    credit_note_refunds.credit_note_refund_mark_paid(credit_note=note, actor="admin:finance", reason="WIRE-BACK-2")
    note.refresh_from_db()
    assert note.refund_status == "succeeded"


def test_pending_refund_settled_by_webhook_payload(stripe_customer, django_capture_on_commit_callbacks):
    """Stripe answers some refunds `pending`; refund.updated settles them (localstripe refunds at
    once, so the pending row and the event payload are made here)."""
    invoice = collected_invoice(stripe_customer(), ["15.00"], django_capture_on_commit_callbacks)
    note = make_credit_note(invoice=invoice, items=[(fee_of(invoice, 0), "15.00")], refund_amount="15.00")
    row = Refund.objects.create(
        credit_note=note,
        payment=invoice.payments.get(),
        provider="stripe",
        amount=D("15.00"),
        currency="USD",
        provider_refund_id="re_pending_1",
        idempotency_key=f"tollgate:credit_note:{note.pk}:refund:1",
    )
    payload = {
        "id": "re_pending_1",
        "object": "refund",
        "status": "failed",
        "failure_reason": "expired_or_canceled_card",
    }

    refunds.refund_event_apply(refund=payload)
    refunds.refund_event_apply(refund=payload)  # delivered twice
    refunds.refund_event_apply(refund={**payload, "id": "re_not_ours", "metadata": {"refund_id": "nope"}})

    row.refresh_from_db()
    note.refresh_from_db()
    assert (row.status, row.failure_code) == ("failed", "expired_or_canceled_card")
    assert note.refund_status == "failed"
    assert kinds(note).count("credit_note_refund_failed") == 1


def test_lost_request_is_started_by_the_sweep(stripe_customer, django_capture_on_commit_callbacks):
    invoice = collected_invoice(stripe_customer(), ["12.00"], django_capture_on_commit_callbacks)
    # Created without running its after-commit work: as if the broker had lost the task.
    note = make_credit_note(invoice=invoice, items=[(fee_of(invoice, 0), "12.00")], refund_amount="12.00")

    assert refunds.refunds_sweep_stale(now=timezone.now()) == (0, 0)  # too fresh to call lost
    assert refunds.refunds_sweep_stale(now=timezone.now() + timedelta(hours=1)) == (0, 1)
    assert refunds.refunds_sweep_stale(now=timezone.now() + timedelta(hours=2)) == (0, 0)

    note.refresh_from_db()
    assert note.refund_status == "succeeded"
    assert [r["amount"] for r in stripe_refunds(invoice.payments.get())] == [1200]


# --- The signal follows the commit ---------------------------------------------------------------


@pytest.fixture
def requested():
    received: list = []

    def receiver(sender, credit_note_id, **kwargs):
        received.append(credit_note_id)

    credit_note_refund_requested.connect(receiver, dispatch_uid="test_refunds.requested")
    yield received
    credit_note_refund_requested.disconnect(dispatch_uid="test_refunds.requested")


class Boom(Exception):
    pass


def test_signal_not_sent_when_the_transaction_rolls_back(db, requested, django_capture_on_commit_callbacks):
    invoice = make_invoice(fees=[{"amount": "10.00"}], paid="10.00")

    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                make_credit_note(invoice=invoice, items=[(fee_of(invoice, 0), "10.00")], refund_amount="10.00")
                raise Boom
        except Boom:
            pass

    assert requested == []
    assert not CreditNote.objects.exists()


def test_signal_sent_once_after_commit_only_for_refunds(db, requested, django_capture_on_commit_callbacks):
    invoice = make_invoice(fees=[{"amount": "10.00"}, {"amount": "5.00"}], paid="15.00")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        note = make_credit_note(invoice=invoice, items=[(fee_of(invoice, 0), "10.00")], refund_amount="10.00")
        credit_only = make_credit_note(invoice=invoice, items=[(fee_of(invoice, 1), "5.00")])
    assert requested == []  # nothing before the commit
    for callback in callbacks:
        callback()

    assert credit_only.refund_status is None
    assert requested == [note.pk]


def test_refund_webhook_signal_reaches_the_ledger(stripe_customer, django_capture_on_commit_callbacks):
    """dj-stripe's refund.updated signal (as it sends it after verifying and storing the event)."""
    from types import SimpleNamespace

    from djstripe.models import Event
    from djstripe.signals import WEBHOOK_SIGNALS

    invoice = collected_invoice(stripe_customer(), ["9.00"], django_capture_on_commit_callbacks)
    note = make_credit_note(invoice=invoice, items=[(fee_of(invoice, 0), "9.00")], refund_amount="9.00")
    row = Refund.objects.create(
        credit_note=note,
        payment=invoice.payments.get(),
        provider="stripe",
        amount=D("9.00"),
        currency="USD",
        idempotency_key=f"tollgate:credit_note:{note.pk}:refund:1",
    )
    # Found by the metadata we sent (the webhook may beat the create call's answer).
    refund = {"id": "re_late_1", "object": "refund", "status": "succeeded", "metadata": {"refund_id": str(row.pk)}}

    WEBHOOK_SIGNALS["refund.updated"].send(sender=Event, event=SimpleNamespace(data={"object": refund}))

    row.refresh_from_db()
    note.refresh_from_db()
    assert (row.status, row.provider_refund_id) == ("succeeded", "re_late_1")
    assert note.refund_status == "succeeded"


def test_hourly_refund_sweep_is_scheduled(db):
    import io

    from django.core.management import call_command
    from django_celery_beat.models import PeriodicTask

    call_command("setup_periodic_tasks", stdout=io.StringIO())

    sweep = PeriodicTask.objects.get(name="payments: resend pending refunds")
    assert (sweep.task, sweep.crontab.minute, sweep.crontab.hour) == (
        "payments.tasks.resend_pending_refunds",
        "45",
        "*",
    )
    assert tasks.resend_pending_refunds.delay().get() == {"refunds_resent": 0, "refunds_started": 0}
