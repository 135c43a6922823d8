"""The billing run bills runs.BATCH subscription-periods per transaction (issue 18): a batch that
raises anywhere is rolled back whole and billed again one invoice per transaction, so a failing
invoice fails alone and leaves nothing behind (no number, no outbox row, no after-commit effect)."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import pytest

from customers.models import DocumentNumbering, Organization
from invoicing import runs
from invoicing.mail.models import DocumentEmail
from invoicing.models import Invoice, InvoiceEvent, InvoiceSubscription
from invoicing.signals import invoice_finalized, invoice_finalized_in_tx
from tests.factories.customers import make_customer
from tests.factories.invoicing import events, subscribe, utc
from tests.factories.plans import make_plan, standard_charge
from webhooks import keys
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

D = Decimal
AT = utc(2024, 2, 1, 0, 10)
PERIOD = ("subscription_periodic", "2024-02-01T00:00:00+00:00")


@pytest.fixture
def announced():
    """Per-organization numbering (one gapless series across customers), one webhook endpoint
    and the invoice e-mail on: every side effect of a finalization leaves a row to count."""
    organization = Organization.current()
    organization.document_numbering = DocumentNumbering.PER_ORGANIZATION
    organization.document_number_prefix = "ACME"
    organization.email = "billing@acme.test"
    organization.email_settings = ["invoice.finalized"]
    organization.save()
    WebhookEndpoint.objects.create(
        webhook_url="https://hooks.acme.test/in", signature_algo="hmac", signing_secret_encrypted=keys.encrypt("s")
    )
    return organization


def _subscriptions(names: list[str]) -> dict[str, object]:
    plan = make_plan(amount_cents=1000, charges=[standard_charge(amount="1")])
    subs = {}
    for i, name in enumerate(names):
        customer = make_customer(external_id=f"cust_{name}", email=f"ap@{name}.test")
        subs[name] = subscribe(plan=plan, external_id=name, customer=customer)
        events(subs[name], [utc(2024, 1, 10)] * (i + 1))
    return subs


@pytest.fixture
def poison():
    """A receiver that fails the finalization of the `poison` subscription's invoice: it runs after
    every other receiver (its number taken, its outbox rows and e-mail written), inside the
    transaction."""
    calls: list[str] = []

    def fail(sender, *, invoice=None, **kwargs):
        calls.append(invoice.customer.external_id)
        if invoice.customer.external_id == "cust_poison":
            raise RuntimeError("poisoned")

    invoice_finalized_in_tx.connect(fail, dispatch_uid="tests.poison")
    yield calls
    invoice_finalized_in_tx.disconnect(dispatch_uid="tests.poison")


def _after_commit_invoice_ids(callbacks) -> list[str]:
    """The invoice ids of the invoice_finalized sends waiting for the commit."""
    return [
        str(cb.keywords["invoice_id"])
        for cb in callbacks
        if isinstance(cb, partial) and getattr(cb.func, "__self__", None) is invoice_finalized
    ]


def test_one_failing_invoice_in_a_batch_fails_alone(announced, poison, django_capture_on_commit_callbacks, caplog):
    names = ["a", "b", "poison", "c", "d"]
    _subscriptions(names)
    with django_capture_on_commit_callbacks() as callbacks:
        summary = runs.bill_due(at=AT, actor="test")

    assert (summary.created, summary.skipped, summary.failed) == (4, 0, 1)
    # Reported once, for the invoice that failed alone (the batch's rollback is not a failure).
    assert summary.errors == ["poison: RuntimeError('poisoned')"]
    assert [r.message for r in caplog.records if r.levelname == "ERROR"] == ["invoicing: billing poison failed"]
    # The batch was tried once together (5 finalizations), then each again (5 more).
    assert poison == ["cust_a", "cust_b", "cust_poison"] + ["cust_a", "cust_b", "cust_poison", "cust_c", "cust_d"]

    invoices = Invoice.objects.order_by("number")
    by_customer = {i.customer.external_id: (i.number, i.total_amount) for i in invoices}
    # Gapless: the rolled-back attempt and the failing invoice gave their numbers back.
    # 10.00 subscription fee + the subscription's events x 1.00 (a: 1 event, b: 2, c: 4, d: 5).
    assert by_customer == {
        "cust_a": ("ACME-202402-001", D("11")),
        "cust_b": ("ACME-202402-002", D("12")),
        "cust_c": ("ACME-202402-003", D("14")),
        "cust_d": ("ACME-202402-004", D("15")),
    }
    ids = {str(i.pk) for i in invoices}
    assert not InvoiceSubscription.objects.filter(subscription__external_id="poison").exists()
    # Each side effect exactly once per invoice kept, none for the attempt rolled back.
    assert sorted(_after_commit_invoice_ids(callbacks)) == sorted(ids)
    deliveries = WebhookDelivery.objects.filter(webhook_type="invoice.created")
    assert sorted(deliveries.values_list("object_id", flat=True)) == sorted(ids)
    assert sorted(str(pk) for pk in DocumentEmail.objects.values_list("document_id", flat=True)) == sorted(ids)
    assert InvoiceEvent.objects.filter(kind="finalized").count() == 4


def test_a_batch_meeting_a_period_billed_already_bills_the_others_once():
    """A racing worker (or a redelivered task) billed one period first: the batch's claim stops at
    its unique row, the batch rolls back, and the retry skips that period and bills the others."""
    subs = _subscriptions(["x", "y", "z"])
    first = runs.bill_batch(items=[(str(subs["y"].pk), [PERIOD])], actor="test")
    assert first.created == 1

    items = [(str(subs[name].pk), [PERIOD]) for name in ("x", "y", "z")]
    summary = runs.bill_batch(items=items, actor="test")

    assert (summary.created, summary.skipped, summary.failed, summary.errors) == (2, 1, 0, [])
    totals = dict(Invoice.objects.values_list("customer__external_id", "total_amount"))
    assert totals == {"cust_x": D("11"), "cust_y": D("12"), "cust_z": D("13")}
    # Per customer numbering: each customer's first invoice, once.
    assert sorted(Invoice.objects.values_list("number", flat=True)) == ["TOL-001-001", "TOL-002-001", "TOL-003-001"]
    again = runs.bill_batch(items=items, actor="test")
    assert (again.created, again.skipped) == (0, 3)


def test_a_subscription_failing_in_one_batch_bills_none_of_its_later_periods(monkeypatch, poison):
    """Batches of two: the poisoned subscription's February fails, so its March is not billed
    (the next run resumes after its last billed period); the others bill both months."""
    monkeypatch.setattr(runs, "BATCH", 2)
    _subscriptions(["a", "poison", "b"])
    summary = runs.bill_due(at=utc(2024, 3, 1, 0, 10), actor="test")
    assert (summary.created, summary.failed) == (4, 2)
    assert summary.errors == ["poison: RuntimeError('poisoned')"]
    # Periods ending on February 1st and March 1st.
    billed = sorted(
        InvoiceSubscription.objects.values_list("subscription__external_id", "to_datetime__month").order_by()
    )
    assert billed == [("a", 2), ("a", 3), ("b", 2), ("b", 3)]


def test_a_batch_reserves_numbers_only_for_the_invoices_it_finalizes(announced, caplog):
    """One customer with a grace period in the batch: its invoice stays draft (no number), the
    others take the batch's reserved numbers, all of them, in one transaction (no retry)."""
    subs = _subscriptions(["a", "b", "c"])
    customer = subs["b"].customer
    customer.invoice_grace_period = 3
    customer.save()
    caplog.set_level("INFO", logger="invoicing.runs")
    summary = runs.bill_due(at=AT, actor="test")
    assert (summary.created, summary.failed) == (3, 0)
    assert not [r for r in caplog.records if "rolled back" in r.message]
    numbers = dict(Invoice.objects.values_list("customer__external_id", "number"))
    assert numbers == {"cust_a": "ACME-202402-001", "cust_b": "ACME-DRAFT", "cust_c": "ACME-202402-002"}


def test_the_retry_consumes_a_wallet_once_not_from_the_rolled_back_attempt(poison):
    """The attempt consumed `a`'s wallet before the poisoned invoice rolled the batch back; the
    retry reads it again (and the customers, subscriptions and lookups) and consumes it once."""
    from invoicing.wallets import services as wallet_services
    from invoicing.wallets.models import Wallet

    subs = _subscriptions(["a", "poison", "b"])
    wallet_services.wallet_create(customer=subs["a"].customer, rate_amount="1", granted_credits="4", actor="test")
    summary = runs.bill_due(at=AT, actor="test")
    assert (summary.created, summary.failed) == (2, 1)
    invoice = Invoice.objects.get(customer__external_id="cust_a")
    # 10.00 + 1 event x 1.00 = 11.00, of which the wallet's 4.00 credits pay 4.00, once.
    assert (invoice.prepaid_credit_amount, invoice.total_amount) == (D("4"), D("7"))
    assert Wallet.objects.get(customer__external_id="cust_a").balance == D("0")


@pytest.mark.postgres  # one statement per batch is PostgreSQL's (elsewhere one bulk_create per model)
def test_a_batch_inserts_its_invoices_together_and_announces_each_after_the_insert(announced):
    """The batch's rows go in as one statement; the receivers run after it, in the invoices'
    order, so a webhook payload (read from the database) holds its invoice whole."""
    import json

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _subscriptions(["a", "b", "c"])
    with CaptureQueriesContext(connection) as captured:
        summary = runs.bill_due(at=AT, actor="test")
    assert (summary.created, summary.failed) == (3, 0)
    inserts = [q for q in captured.captured_queries if q["sql"].startswith('WITH i0 AS (INSERT INTO "invoicing_')]
    assert len(inserts) == 1
    bodies = {
        body["invoice"]["customer"]["external_id"]: body["invoice"]
        for body in (json.loads(d.body) for d in WebhookDelivery.objects.filter(webhook_type="invoice.created"))
    }
    # 10.00 subscription fee + the subscription's events x 1.00 (a: 1 event, b: 2, c: 3): in cents.
    assert {name: (body["number"], body["total_amount_cents"], len(body["fees"])) for name, body in bodies.items()} == {
        "cust_a": ("ACME-202402-001", 1100, 2),
        "cust_b": ("ACME-202402-002", 1200, 2),
        "cust_c": ("ACME-202402-003", 1300, 2),
    }


@pytest.mark.postgres
def test_a_customers_second_invoice_in_a_batch_follows_the_first_ones_insert():
    """A customer billed twice in one batch (two subscriptions, or two periods of one): the rows
    held so far go in before its second invoice is computed, which may read the first's (credit
    notes, progressive billing, commitments of the same customer)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    plan = make_plan(amount_cents=1000, charges=[standard_charge(amount="1")])
    one = make_customer(external_id="cust_one")
    other = make_customer(external_id="cust_other")
    first = subscribe(plan=plan, external_id="one_first", customer=one)
    second = subscribe(plan=plan, external_id="one_second", customer=one)
    third = subscribe(plan=plan, external_id="other", customer=other)
    for sub, count in ((first, 1), (second, 2), (third, 3)):
        events(sub, [utc(2024, 1, 10)] * count)
    # Two months due for each: February's and March's periods, six invoices in one batch.
    with CaptureQueriesContext(connection) as captured:
        summary = runs.bill_due(at=utc(2024, 3, 1, 0, 10), actor="test")
    assert (summary.created, summary.failed) == (6, 0)
    inserts = [q for q in captured.captured_queries if q["sql"].startswith('WITH i0 AS (INSERT INTO "invoicing_')]
    # Due in period order (one_first, one_second, other; February, then March), a statement
    # whenever the customer held comes back: [one_first Feb], [one_second Feb, other Feb],
    # [one_first Mar], [one_second Mar, other Mar].
    assert len(inserts) == 4
    totals = sorted(
        Invoice.objects.values_list(
            "invoice_subscriptions__subscription__external_id",
            "invoice_subscriptions__to_datetime__month",
            "total_amount",
        )
    )
    # January's events are billed in February's period; March's period has none: 10.00 alone.
    assert totals == [
        ("one_first", 2, D("11")),
        ("one_first", 3, D("10")),
        ("one_second", 2, D("12")),
        ("one_second", 3, D("10")),
        ("other", 2, D("13")),
        ("other", 3, D("10")),
    ]
    numbers = sorted(Invoice.objects.filter(customer=one).values_list("number", flat=True))
    assert numbers == ["TOL-001-001", "TOL-001-002", "TOL-001-003", "TOL-001-004"]
