"""Dunning campaigns: the default campaign's steps (3, 7, 14 days past due) each e-mail one payment
request per customer and currency, once per (step, invoice) whatever reruns or races, show on the
invoice's timeline, skip excluded customers and stop below the threshold."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from invoicing.models import InvoiceEvent
from payments import services
from payments.dunning import dunning_run, reached_step
from payments.models import DunningAttempt, DunningCampaign, DunningStep, DunningThreshold, PaymentRequest
from tests.concurrency import race
from tests.factories.customers import make_customer
from tests.factories.payments import make_finalized_invoice

pytestmark = pytest.mark.django_db

DUE = date(2026, 3, 2)


@pytest.fixture
def campaign(organization):
    organization.email = "billing@acme.test"
    organization.save()
    campaign = DunningCampaign.objects.create(
        code="default", name="Default", is_default=True, bcc_emails=["ar@acme.test"]
    )
    for days in (3, 7, 14):
        DunningStep.objects.create(campaign=campaign, days_past_due=days)
    return campaign


def overdue(customer, total: str = "100.00", currency: str = "USD", due: date = DUE):
    return make_finalized_invoice(
        customer=customer,
        total=total,
        currency=currency,
        issuing_date=due - timedelta(days=30),
        payment_due_date=due,
        payment_overdue=True,
    )


def run(day: date, capture):
    with capture(execute=True):
        return dunning_run(today=day)


def test_reached_step():
    steps = [DunningStep(days_past_due=d) for d in (3, 7, 14)]
    assert reached_step(steps, due=DUE, today=DUE + timedelta(days=2)) is None
    assert reached_step(steps, due=DUE, today=DUE + timedelta(days=3)).days_past_due == 3
    assert reached_step(steps, due=DUE, today=DUE + timedelta(days=13)).days_past_due == 7
    assert reached_step(steps, due=DUE, today=DUE + timedelta(days=90)).days_past_due == 14


def test_each_step_once(campaign, smtp_server, django_capture_on_commit_callbacks):
    customer = make_customer(external_id="dun_1", email="ap@buyer.test")
    invoice = overdue(customer)

    sent_on = {}
    for offset in range(0, 31):
        summary = run(DUE + timedelta(days=offset), django_capture_on_commit_callbacks)
        if summary.payment_requests:
            sent_on[offset] = summary.steps
    run(DUE + timedelta(days=14), django_capture_on_commit_callbacks)  # a rerun of a past day

    assert sent_on == {3: 1, 7: 1, 14: 1}
    assert PaymentRequest.objects.filter(customer=customer).count() == 3
    assert [got.rcpt_tos for got in smtp_server.received] == [["ap@buyer.test", "ar@acme.test"]] * 3
    timeline = InvoiceEvent.objects.filter(invoice=invoice, kind="dunning_step").order_by("id")
    assert [event.payload["days_past_due"] for event in timeline] == [3, 7, 14]
    assert all(event.payload["campaign"] == "default" for event in timeline)


def test_late_start_takes_the_latest_step_and_skips_the_earlier(campaign, django_capture_on_commit_callbacks):
    customer = make_customer(external_id="dun_late", email="ap@buyer.test")
    older = overdue(customer, "60.00", due=DUE - timedelta(days=20))  # 30 days past due on DUE+10
    newer = overdue(customer, "40.00", due=DUE)  # 10 days past due

    summary = run(DUE + timedelta(days=10), django_capture_on_commit_callbacks)

    # one request for both (60 + 40), the older invoice at step 14 (3 and 7 skipped), the newer at 7 (3 skipped)
    assert (summary.payment_requests, summary.steps, summary.skipped_steps) == (1, 2, 3)
    request = PaymentRequest.objects.get()
    assert request.amount == Decimal("100.00")
    assert request.dunning_step.days_past_due == 14
    done = {(a.invoice_id, a.step.days_past_due, a.skipped) for a in DunningAttempt.objects.select_related("step")}
    assert done == {
        (older.pk, 3, True),
        (older.pk, 7, True),
        (older.pk, 14, False),
        (newer.pk, 3, True),
        (newer.pk, 7, False),
    }
    assert run(DUE + timedelta(days=13), django_capture_on_commit_callbacks).payment_requests == 0
    assert run(DUE + timedelta(days=14), django_capture_on_commit_callbacks).steps == 1  # newer reaches 14


def test_excluded_customer_paid_invoice_and_threshold(campaign, django_capture_on_commit_callbacks):
    excluded = make_customer(external_id="dun_excluded", exclude_from_dunning_campaign=True)
    overdue(excluded)
    DunningThreshold.objects.create(campaign=campaign, currency="EUR", amount=Decimal("100.00"))
    small = make_customer(external_id="dun_small")
    overdue(small, "60.00", currency="EUR")
    dollars = make_customer(external_id="dun_usd")
    overdue(dollars, "500.00", currency="USD")  # the campaign has thresholds, none in USD

    summary = run(DUE + timedelta(days=3), django_capture_on_commit_callbacks)

    assert summary.payment_requests == 0
    assert summary.below_threshold == 2  # EUR 60 < 100; USD without a threshold
    big = overdue(small, "50.00", currency="EUR")  # EUR 110 now
    assert run(DUE + timedelta(days=3), django_capture_on_commit_callbacks).payment_requests == 1
    assert PaymentRequest.objects.get().amount == Decimal("110.00")
    with django_capture_on_commit_callbacks(execute=True):
        services.payment_create_manual(invoice_id=big.pk, amount_cents=5000, reference="PAID")
    # Paid below the threshold again (EUR 60): the campaign stops reminding.
    assert run(DUE + timedelta(days=7), django_capture_on_commit_callbacks).payment_requests == 0


def test_retry_card_step_charges_again(campaign, django_capture_on_commit_callbacks, monkeypatch):
    step = campaign.steps.get(days_past_due=3)
    step.retry_card = True
    step.save()
    customer = make_customer(external_id="dun_card", payment_provider="stripe", email="ap@buyer.test")
    invoice = overdue(customer)
    retried = []
    monkeypatch.setattr(
        "payments.services.invoice_payment_retry",
        lambda *, invoice_id, trigger: retried.append((invoice_id, trigger)),
    )

    summary = run(DUE + timedelta(days=3), django_capture_on_commit_callbacks)

    assert summary.card_retries == 1
    assert retried == [(invoice.pk, "dunning")]


def test_the_database_refuses_a_step_twice(campaign):
    invoice = overdue(make_customer(external_id="dun_db"))
    step = campaign.steps.first()
    DunningAttempt.objects.create(step=step, invoice=invoice)
    with pytest.raises(IntegrityError), transaction.atomic():
        DunningAttempt.objects.create(step=step, invoice=invoice, skipped=True)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_runs_racing_do_each_step_once(organization):
    organization.email = "billing@acme.test"
    organization.save()
    campaign = DunningCampaign.objects.create(code="race", name="Race", is_default=True)
    DunningStep.objects.create(campaign=campaign, days_past_due=3)
    for n in range(3):
        overdue(make_customer(external_id=f"dun_race_{n}", email=f"ap{n}@buyer.test"))

    results = race(lambda: dunning_run(today=DUE + timedelta(days=3)), count=2)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.payment_requests for r in results) == 3
    assert PaymentRequest.objects.count() == 3
    assert DunningAttempt.objects.count() == 3


def test_campaign_admin_and_the_step_on_the_invoice(campaign, admin_client, django_capture_on_commit_callbacks):
    invoice = overdue(make_customer(external_id="dun_admin", email="ap@buyer.test"))
    run(DUE + timedelta(days=3), django_capture_on_commit_callbacks)

    listing = admin_client.get("/admin/payments/dunningcampaign/")
    page = admin_client.get(f"/admin/invoicing/invoice/{invoice.pk}/change/")
    requests = admin_client.get("/admin/payments/paymentrequest/")

    assert "3, 7, 14" in listing.content.decode()
    assert "dunning_step" in page.content.decode()
    assert requests.status_code == 200 and "dun_admin" in requests.content.decode()
    added = admin_client.post(
        "/admin/payments/dunningcampaign/add/",
        {
            "name": "Gentle",
            "code": "gentle",
            "description": "",
            "bcc_emails": "[]",
            "steps-TOTAL_FORMS": "1",
            "steps-INITIAL_FORMS": "0",
            "steps-0-days_past_due": "5",
            "thresholds-TOTAL_FORMS": "0",
            "thresholds-INITIAL_FORMS": "0",
        },
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    assert list(DunningCampaign.objects.get(code="gentle").steps.values_list("days_past_due", flat=True)) == [5]
