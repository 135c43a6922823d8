"""Collecting finalized invoices through Stripe (localstripe): success, decline, 3-D Secure, retries
that never charge twice, the automatic retry schedule."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
from django.utils import timezone

from invoicing.signals import invoice_finalized
from payments import services, tasks
from payments.models import Payment, PaymentStatus, PaymentTrigger
from tests.factories.customers import make_customer
from tests.factories.payments import make_finalized_invoice

from .conftest import CARD_DECLINED_ON_CHARGE, CARD_REQUIRES_AUTHENTICATION, LOCALSTRIPE_SECRET_KEY, make_card

pytestmark = pytest.mark.stripe


def finalize(invoice, django_capture_on_commit_callbacks):
    """What invoicing does after commit: send invoice_finalized (our receiver queues the task)."""
    with django_capture_on_commit_callbacks(execute=True):
        invoice_finalized.send(sender=type(invoice), invoice_id=invoice.pk)
    invoice.refresh_from_db()


def intents_for(invoice) -> list[dict]:
    """The PaymentIntents localstripe holds for this invoice: what Stripe actually charged."""
    intents = stripe.PaymentIntent.list(api_key=LOCALSTRIPE_SECRET_KEY, limit=100)
    return [
        intent.to_dict()
        for intent in intents.auto_paging_iter()
        if (intent.to_dict().get("metadata") or {}).get("invoice_id") == str(invoice.pk)
    ]


def test_finalized_invoice_is_collected_in_usd(stripe_customer, django_capture_on_commit_callbacks):
    customer = stripe_customer()
    invoice = make_finalized_invoice(customer=customer, total="123.45", currency="USD")

    finalize(invoice, django_capture_on_commit_callbacks)

    payment = invoice.payments.get()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.attempt == 1
    assert payment.trigger == PaymentTrigger.FINALIZATION
    assert payment.amount == Decimal("123.45")
    assert payment.provider_payment_id.startswith("pi_")
    assert payment.provider_customer_id == customer.provider_customer_id
    assert payment.paid_at is not None
    assert invoice.payment_status == "succeeded"
    assert invoice.total_paid_amount == Decimal("123.45")
    assert invoice.total_due_amount == Decimal(0)
    [intent] = intents_for(invoice)
    assert intent["amount"] == 12345
    assert intent["currency"] == "usd"
    assert intent["customer"] == customer.provider_customer_id
    assert intent["metadata"] == {
        "invoice_id": str(invoice.pk),
        "invoice_number": invoice.number,
        "attempt": "1",
        "payment_id": str(payment.pk),
    }
    assert intent["status"] == "succeeded"


def test_jpy_is_charged_in_yen(stripe_customer, django_capture_on_commit_callbacks):
    invoice = make_finalized_invoice(customer=stripe_customer(currency="JPY"), total="4980", currency="JPY")

    finalize(invoice, django_capture_on_commit_callbacks)

    [intent] = intents_for(invoice)
    assert (intent["amount"], intent["currency"]) == (4980, "jpy")
    assert invoice.payment_status == "succeeded"
    assert invoice.total_paid_amount == Decimal("4980")


def test_bhd_is_charged_rounded_up_to_ten_fils(stripe_customer, django_capture_on_commit_callbacks):
    invoice = make_finalized_invoice(customer=stripe_customer(currency="BHD"), total="10.005", currency="BHD")

    finalize(invoice, django_capture_on_commit_callbacks)

    [intent] = intents_for(invoice)
    assert intent["amount"] == 10010
    payment = invoice.payments.get()
    # The payment records what was charged; the invoice is settled (5 fils collected above it).
    assert payment.amount == Decimal("10.010")
    assert invoice.payment_status == "succeeded"
    assert invoice.total_due_amount == Decimal(0)


def test_decline_fails_with_the_reason(stripe_customer, django_capture_on_commit_callbacks):
    invoice = make_finalized_invoice(
        customer=stripe_customer(payment_method=make_card(CARD_DECLINED_ON_CHARGE)), total="20.00"
    )

    finalize(invoice, django_capture_on_commit_callbacks)

    payment = invoice.payments.get()
    assert payment.status == PaymentStatus.FAILED
    assert payment.failure_code == "card_declined"
    assert payment.failure_reason == "Your card was declined."
    # localstripe names only the charge in the error; the attempt still knows its intent.
    assert payment.provider_payment_id.startswith("pi_")
    assert invoice.payment_status == "failed"
    assert invoice.total_paid_amount == Decimal(0)


def test_three_d_secure_requires_action(stripe_customer, django_capture_on_commit_callbacks):
    invoice = make_finalized_invoice(
        customer=stripe_customer(payment_method=make_card(CARD_REQUIRES_AUTHENTICATION)), total="20.00"
    )

    finalize(invoice, django_capture_on_commit_callbacks)

    payment = invoice.payments.get()
    assert payment.status == PaymentStatus.REQUIRES_ACTION
    assert payment.next_action["type"] == "use_stripe_sdk"
    assert invoice.payment_status == "pending"


def test_customer_without_payment_method_fails(stripe_customer, django_capture_on_commit_callbacks):
    invoice = make_finalized_invoice(customer=stripe_customer(payment_method=None), total="20.00")

    finalize(invoice, django_capture_on_commit_callbacks)

    payment = invoice.payments.get()
    assert (payment.status, payment.failure_code) == (PaymentStatus.FAILED, "no_payment_method")
    assert invoice.payment_status == "failed"
    assert intents_for(invoice) == []


def test_stripe_customer_is_created_on_demand_at_collection(stripe_api, django_capture_on_commit_callbacks):
    """A stripe customer saved before Stripe was configured has no Stripe customer yet: it gets one,
    and with no card the attempt fails with a reason instead of crashing."""
    customer = make_customer(external_id="late", payment_provider="stripe")
    invoice = make_finalized_invoice(customer=customer, total="5.00")

    finalize(invoice, django_capture_on_commit_callbacks)

    customer.refresh_from_db()
    assert customer.provider_customer_id.startswith("cus_")
    assert invoice.payments.get().failure_code == "no_payment_method"


def test_nothing_happens_for_manual_customers_or_nothing_due(stripe_api, django_capture_on_commit_callbacks):
    manual = make_finalized_invoice(customer=make_customer(external_id="m", payment_provider="manual"))
    zero = make_finalized_invoice(customer=make_customer(external_id="z", payment_provider="stripe"), total="0")
    draft = make_finalized_invoice(customer=make_customer(external_id="d", payment_provider="stripe"), status="draft")

    for invoice in (manual, zero, draft):
        finalize(invoice, django_capture_on_commit_callbacks)

    assert not Payment.objects.exists()


def test_signal_sent_twice_starts_one_attempt(stripe_customer, django_capture_on_commit_callbacks):
    invoice = make_finalized_invoice(customer=stripe_customer(), total="10.00")

    finalize(invoice, django_capture_on_commit_callbacks)
    finalize(invoice, django_capture_on_commit_callbacks)

    assert invoice.payments.count() == 1
    assert len(intents_for(invoice)) == 1


def test_nothing_collected_when_stripe_is_not_configured(db, settings, django_capture_on_commit_callbacks):
    settings.STRIPE_TEST_SECRET_KEY = ""
    invoice = make_finalized_invoice(customer=make_customer(external_id="nokey", payment_provider="stripe"))

    finalize(invoice, django_capture_on_commit_callbacks)

    assert not invoice.payments.exists()
    assert invoice.payment_status == "pending"


# --- Retries ------------------------------------------------------------------------------------


def retry(api, invoice):
    return api.post(f"/api/v1/invoices/{invoice.pk}/retry_payment")


def test_retry_after_decline_is_a_new_attempt(api, stripe_customer, django_capture_on_commit_callbacks):
    customer = stripe_customer(payment_method=make_card(CARD_DECLINED_ON_CHARGE))
    invoice = make_finalized_invoice(customer=customer, total="30.00")
    finalize(invoice, django_capture_on_commit_callbacks)
    services.customer_payment_method_attach(customer=customer, provider_method_id="pm_card_visa")

    with django_capture_on_commit_callbacks(execute=True):
        response = retry(api, invoice)

    assert response.status_code == 200
    assert response.content == b""
    attempts = list(invoice.payments.order_by("attempt").values_list("attempt", "status", "trigger"))
    assert attempts == [
        (1, PaymentStatus.FAILED, PaymentTrigger.FINALIZATION),
        (2, PaymentStatus.SUCCEEDED, PaymentTrigger.API),
    ]
    invoice.refresh_from_db()
    assert invoice.payment_status == "succeeded"
    assert invoice.total_paid_amount == Decimal("30.00")
    assert sorted(intent["status"] for intent in intents_for(invoice)) == ["requires_payment_method", "succeeded"]


def test_retry_never_charges_twice(api, stripe_customer, django_capture_on_commit_callbacks):
    invoice = make_finalized_invoice(customer=stripe_customer(), total="30.00")
    finalize(invoice, django_capture_on_commit_callbacks)
    assert invoice.payment_status == "succeeded"

    with django_capture_on_commit_callbacks(execute=True):
        response = retry(api, invoice)
    # Straight to the service and the task too, as a stale retry would.
    with django_capture_on_commit_callbacks(execute=True):
        tasks.collect_invoice_payment.delay(str(invoice.pk), PaymentTrigger.RETRY_SCHEDULE, 1)
    services.payment_submit(payment_id=invoice.payments.get().pk)

    assert response.status_code == 405
    assert response.json() == {"status": 405, "error": "Method Not Allowed", "code": "invalid_status"}
    assert invoice.payments.count() == 1
    assert [intent["status"] for intent in intents_for(invoice)] == ["succeeded"]


def test_retry_refused_while_an_attempt_is_processing(api, stripe_api):
    from tests.factories.payments import make_stripe_payment

    invoice = make_finalized_invoice(customer=make_customer(external_id="p", payment_provider="stripe"))
    make_stripe_payment(invoice=invoice, attempt=1, status=PaymentStatus.PROCESSING)

    response = retry(api, invoice)

    assert response.status_code == 405
    assert response.json()["code"] == "payment_processor_is_currently_handling_payment"


def test_retry_cancels_the_attempt_waiting_for_authentication(api, stripe_customer, django_capture_on_commit_callbacks):
    customer = stripe_customer(payment_method=make_card(CARD_REQUIRES_AUTHENTICATION))
    invoice = make_finalized_invoice(customer=customer, total="12.00")
    finalize(invoice, django_capture_on_commit_callbacks)
    services.customer_payment_method_attach(customer=customer, provider_method_id="pm_card_visa")

    with django_capture_on_commit_callbacks(execute=True):
        assert retry(api, invoice).status_code == 200

    first, second = invoice.payments.order_by("attempt")
    assert (first.status, first.failure_code) == (PaymentStatus.FAILED, "canceled")
    assert second.status == PaymentStatus.SUCCEEDED
    assert sorted(intent["status"] for intent in intents_for(invoice)) == ["canceled", "succeeded"]


# A customer without Stripe is no longer refused: Lago answers 200 and announces
# invoice.payment_failure (tests/portal/test_invoice_actions.py).
@pytest.mark.parametrize(("setup", "code"), [("draft", "invalid_status")])
def test_retry_refusals(api, stripe_api, setup, code):
    provider = "manual" if setup == "manual_customer" else "stripe"
    status = "draft" if setup == "draft" else "finalized"
    invoice = make_finalized_invoice(
        customer=make_customer(external_id=setup, payment_provider=provider), status=status
    )

    response = retry(api, invoice)

    assert response.status_code == 405
    assert response.json()["code"] == code


@pytest.mark.parametrize("invoice_id", ["8c3f1f4e-6a7c-4c1e-9d8e-2b0f6f1e0a11", "nope"])
def test_retry_unknown_invoice_is_404(api, invoice_id):
    response = api.post(f"/api/v1/invoices/{invoice_id}/retry_payment")
    assert response.status_code == 404
    assert response.json()["code"] == "invoice_not_found"


def test_automatic_retry_schedule(stripe_customer, settings, django_capture_on_commit_callbacks):
    """Attempts 2, 3, 4 run 1, 3 and 7 days after the first failure; then no more."""
    settings.TOLLGATE_PAYMENT_RETRY_DAYS = [1, 3, 7]
    customer = stripe_customer(payment_method=make_card(CARD_DECLINED_ON_CHARGE))
    invoice = make_finalized_invoice(customer=customer, total="9.99")
    finalize(invoice, django_capture_on_commit_callbacks)
    first_failure = invoice.payments.get().created_at

    def run_at(offset: timedelta) -> int:
        return services.payments_retry_due(now=first_failure + offset)

    assert run_at(timedelta(hours=23)) == 0
    assert run_at(timedelta(days=1)) == 1
    assert run_at(timedelta(days=2)) == 0
    assert run_at(timedelta(days=3)) == 1
    assert run_at(timedelta(days=6)) == 0
    assert run_at(timedelta(days=7)) == 1
    assert run_at(timedelta(days=30)) == 0

    attempts = list(invoice.payments.order_by("attempt").values_list("attempt", "trigger", "status"))
    assert attempts == [(1, PaymentTrigger.FINALIZATION, PaymentStatus.FAILED)] + [
        (n, PaymentTrigger.RETRY_SCHEDULE, PaymentStatus.FAILED) for n in (2, 3, 4)
    ]
    assert len(intents_for(invoice)) == 4


def test_scheduled_retry_collects_once_the_card_is_fixed(stripe_customer, django_capture_on_commit_callbacks):
    customer = stripe_customer(payment_method=make_card(CARD_DECLINED_ON_CHARGE))
    invoice = make_finalized_invoice(customer=customer, total="9.99")
    finalize(invoice, django_capture_on_commit_callbacks)
    services.customer_payment_method_attach(customer=customer, provider_method_id="pm_card_visa")
    later = timezone.now() + timedelta(days=30)

    assert services.payments_retry_due(now=later) == 1
    assert services.payments_retry_due(now=later) == 0

    invoice.refresh_from_db()
    assert invoice.payment_status == "succeeded"
    assert invoice.payments.filter(status=PaymentStatus.SUCCEEDED).count() == 1


def test_pending_attempt_left_behind_is_sent_again_or_closed(stripe_customer):
    """A worker died between recording attempt 1 and calling Stripe: the sweep sends it (same
    idempotency key); one too old to re-send safely is closed as failed."""
    from tests.factories.payments import make_stripe_payment

    fresh = make_finalized_invoice(customer=stripe_customer(), total="7.00")
    old = make_finalized_invoice(customer=stripe_customer(), total="8.00")
    for invoice in (fresh, old):
        make_stripe_payment(
            invoice=invoice,
            status=PaymentStatus.PENDING,
            idempotency_key=f"tollgate:invoice:{invoice.pk}:attempt:1",
        )
    now = timezone.now()
    Payment.objects.filter(invoice=fresh).update(updated_at=now - timedelta(minutes=30))
    Payment.objects.filter(invoice=old).update(created_at=now - timedelta(days=2), updated_at=now - timedelta(days=2))

    assert services.payments_sweep_stale(now=now) == (1, 1)

    assert fresh.payments.get().status == PaymentStatus.SUCCEEDED
    assert (old.payments.get().status, old.payments.get().failure_code) == (PaymentStatus.FAILED, "not_confirmed")
    assert len(intents_for(fresh)) == 1
    assert intents_for(old) == []


def test_hourly_task_runs_both(stripe_api):
    assert tasks.retry_failed_payments.delay().get() == {
        "retries_started": 0,
        "pending_resent": 0,
        "pending_closed": 0,
        "missed_collected": 0,
    }
