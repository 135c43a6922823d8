"""The billing run at scale (issue 18): queries per invoice constant in events and invoices, the
batched Celery fan-out, one-statement inserts, the one-query tax fallback."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing_project.bulk import insert_together
from customers.models import Organization
from invoicing import runs, tasks
from invoicing.corrections.models import BilledThrough, FeeEvent, FeeEventSet
from invoicing.models import Fee, FeeType, Invoice, InvoiceEvent, InvoiceStatus
from metrics.models import Event
from plans.models import CustomerTax, Tax
from plans.selectors import customer_default_taxes
from tests.factories.customers import make_customer
from tests.factories.invoicing import events, subscribe, utc
from tests.factories.plans import make_plan, standard_charge

pytestmark = pytest.mark.django_db

D = Decimal
AT = utc(2024, 2, 1, 0, 10)


def _subscriptions(count: int, events_each: int) -> list:
    plan = make_plan(amount_cents=1000, charges=[standard_charge(amount="1")])
    subs = []
    for i in range(count):
        sub = subscribe(plan=plan, external_id=f"scale_{events_each}_{i}", customer=make_customer(external_id=f"c{i}"))
        events(sub, [utc(2024, 1, 10)] * events_each)
        subs.append(sub)
    return subs


@pytest.mark.postgres  # counts or refusals PostgreSQL makes (SQLite differs)
def test_run_queries_three_per_batch_and_none_per_invoice_whatever_the_events(monkeypatch):
    plan = make_plan(amount_cents=1000, charges=[standard_charge(amount="1")])
    for i in range(2):
        sub = subscribe(plan=plan, external_id=f"few_{i}", customer=make_customer(external_id=f"few{i}"))
        events(sub, [utc(2024, 1, 10)])
    with CaptureQueriesContext(connection) as two:
        assert runs.bill_due(at=AT, actor="test").created == 2  # one batch of two
    for i in range(4):
        sub = subscribe(plan=plan, external_id=f"many_{i}", customer=make_customer(external_id=f"many{i}"))
        events(sub, [utc(2024, 1, 10)] * 25)
    monkeypatch.setattr(runs, "BATCH", 2)
    with CaptureQueriesContext(connection) as four_more:
        summary = runs.bill_due(at=AT, actor="test")  # two batches of two
    assert summary.created == 4 and summary.skipped == 2

    # Per batch (one transaction) three statements: the batch's invoice numbers reserved, the
    # webhook endpoints read, and ONE insert of every invoice's claim, invoice and rows (with their
    # lineage); per invoice none; plus the same constant for both runs (selectors, the chunk's usage
    # and lookups), whatever the events. (Savepoints: the test's transaction makes each batch's
    # transaction one; not counted.)
    def statements(captured: CaptureQueriesContext) -> int:
        return sum(1 for q in captured.captured_queries if "SAVEPOINT" not in q["sql"])

    def starting(captured: CaptureQueriesContext, prefix: str) -> int:
        return sum(1 for q in captured.captured_queries if q["sql"].lstrip().startswith(prefix))

    invoice_insert = 'WITH i0 AS (INSERT INTO "invoicing_invoicesubscription"'
    assert (starting(two, invoice_insert), starting(four_more, invoice_insert)) == (1, 2)
    assert (starting(two, 'SELECT "webhooks_webhookendpoint"'), starting(four_more, 'SELECT "webhooks')) == (1, 2)
    # The sequences: the chunk's new customers' numbers (one statement), then one per batch.
    assert (starting(two, 'INSERT INTO "sequences_sequence"'), starting(four_more, 'INSERT INTO "sequences')) == (2, 3)
    # No claim, number or savepoint of its own per invoice.
    assert starting(four_more, 'INSERT INTO "invoicing_invoicesubscription"') == 0
    # Everything else is constant per run (selectors, the chunk's usage and lookups: customers'
    # taxes, coupons, credit notes, wallets; plans' fixed charges and commitments; progressive
    # billing periods), whatever the events: the other steps add nothing per invoice. The e-mail
    # outbox gets the invoice and the organization in memory, the lineage (a FeeEventSet row per fee) is
    # part of the batch's insert statement.
    assert statements(four_more) - statements(two) == (2 - 1) * 3
    inserts = [
        q["sql"]
        for q in four_more.captured_queries
        if q["sql"].startswith(("WITH i0", 'INSERT INTO "invoicing_invoice'))
    ]
    assert len(inserts) == 2  # a batch's invoices and their rows: one statement
    assert all("UNNEST" in sql and "INSERT INTO invoicing_feeeventset" in sql for sql in inserts)
    invoice = Invoice.objects.get(invoice_subscriptions__subscription__external_id="many_0")
    assert invoice.status == InvoiceStatus.FINALIZED
    assert invoice.fees.get(fee_type=FeeType.CHARGE).units == 25
    assert invoice.total_amount == D("35")  # 10 + 25 events x 1
    assert list(invoice.events.values_list("kind", flat=True).order_by("id")) == ["created", "finalized"]
    # The lineage written with the insert: the fee's 25 events, and the billed-through instant.
    fee = invoice.fees.get(fee_type=FeeType.CHARGE)
    # One row for the fee (its set: 25 event ids, ascending, all of the subscription), none per event.
    ids = FeeEventSet.objects.get(fee=fee).event_ids
    assert len(ids) == 25 and ids == sorted(ids)
    assert Event.objects.filter(id__in=ids, external_subscription_id="many_0").count() == 25
    assert not FeeEvent.objects.filter(root_fee=fee).exists()
    assert BilledThrough.objects.get(external_subscription_id="many_0").billed_until == utc(2024, 2, 1)


def test_the_fan_out_publishes_batches_and_a_batch_bills_each_period_once(settings):
    plan = make_plan(amount_cents=1000, charges=[standard_charge(amount="1")])
    subs = []
    for i in range(3):
        sub = subscribe(plan=plan, external_id=f"fan_{i}", customer=make_customer(external_id=f"fan{i}"))
        events(sub, [utc(2024, 1, 10)] * (i + 1))
        subs.append(sub)
    fanned = tasks.bill_due_subscriptions(AT.isoformat())  # eager: the batches run inline
    assert (fanned["subscriptions"], fanned["tasks"]) == (3, 1)
    totals = dict(Invoice.objects.values_list("invoice_subscriptions__subscription__external_id", "total_amount"))
    assert totals == {"fan_0": D("11"), "fan_1": D("12"), "fan_2": D("13")}
    # The same batch again (a redelivered task): nothing billed twice.
    item = [(str(subs[0].pk), [("subscription_periodic", "2024-02-01T00:00:00+00:00")])]
    again = runs.bill_batch(items=item, actor="test")
    assert (again.created, again.skipped) == (0, 1)
    assert Invoice.objects.count() == 3


def test_insert_together_writes_every_model_in_one_statement():
    sub = _subscriptions(1, events_each=0)[0]
    customer = sub.customer
    day = utc(2024, 2, 1).date()
    invoice = Invoice(customer=customer, currency="USD", issuing_date=day, payment_due_date=day, number="TOL-DRAFT")
    fees = [
        Fee(
            invoice=invoice,
            subscription=sub,
            fee_type=FeeType.SUBSCRIPTION,
            currency="USD",
            amount=D("10.00"),
            precise_amount=D("10"),
            units=D(1),
            unit_amount=D("10"),
        )
        for _ in range(2)
    ]
    log = [InvoiceEvent(invoice=invoice, kind="created", actor="test", payload={})]
    with CaptureQueriesContext(connection) as captured:
        statements = insert_together([(Invoice, [invoice]), (Fee, fees), (InvoiceEvent, log), (Fee, [])])
    expected = 1 if connection.vendor == "postgresql" else 3
    assert statements == expected and len(captured.captured_queries) == expected
    stored = Invoice.objects.get(pk=invoice.pk)
    assert stored.fees.count() == 2 and stored.events.count() == 1
    assert stored.created_at is not None and not invoice._state.adding


def test_default_taxes_read_in_one_query_customer_first_then_organization():
    Organization.current()
    vat = Tax.objects.create(code="vat", name="VAT", rate=D("20"), applied_to_organization=True)
    local = Tax.objects.create(code="local", name="Local", rate=D("5"))
    Tax.objects.create(code="unused", name="Unused", rate=D("1"))
    plain, taxed = make_customer(external_id="plain"), make_customer(external_id="taxed")
    CustomerTax.objects.create(customer=taxed, tax=local)
    with CaptureQueriesContext(connection) as captured:
        assert customer_default_taxes(plain) == [vat]  # the organization's
        assert customer_default_taxes(taxed) == [local]  # the customer's own, not the organization's
    assert len(captured.captured_queries) == 2


@pytest.mark.postgres  # counts or refusals PostgreSQL makes (SQLite differs)
def test_a_wallet_costs_the_run_exactly_one_statement_per_invoice():
    """Two customers billed without wallets, then two with one wallet each (issue 14: "invoice
    finalization with one wallet applied costs at most one more query per invoice than without";
    manage.py bench_wallets). The chunk's read of its customers' wallets is there either way
    (RunContext.for_customers); a wallet adds ONE statement per invoice, the guarded consumption
    (lock, check against that read, insert the transaction, take the balance), and
    wallet_transaction.created shares the invoice transaction's one read of the webhook endpoints."""
    from invoicing.wallets import services as wallet_services
    from invoicing.wallets.models import Wallet

    plan = make_plan(amount_cents=1000, charges=[standard_charge(amount="1")])
    customers = {}
    for name in ("plain_0", "plain_1", "walleted_0", "walleted_1"):
        customers[name] = make_customer(external_id=name)
        subscribe(plan=plan, external_id=f"s_{name}", customer=customers[name])
    for name in ("walleted_0", "walleted_1"):
        wallet_services.wallet_create(customer=customers[name], rate_amount="1", granted_credits="4", actor="test")

    def starting(captured: CaptureQueriesContext, prefix: str) -> int:
        return sum(1 for q in captured.captured_queries if q["sql"].lstrip().startswith(prefix))

    with CaptureQueriesContext(connection) as plain:
        assert runs.bill_due(at=AT, actor="test", customer_external_id="plain_0").created == 1
        assert runs.bill_due(at=AT, actor="test", customer_external_id="plain_1").created == 1
    with CaptureQueriesContext(connection) as walleted:
        assert runs.bill_due(at=AT, actor="test", customer_external_id="walleted_0").created == 1
        assert runs.bill_due(at=AT, actor="test", customer_external_id="walleted_1").created == 1
    assert Invoice.objects.filter(prepaid_credit_amount=D("4")).count() == 2  # 10.00 each, 4.00 paid by credits
    assert sorted(Wallet.objects.values_list("balance", flat=True)) == [D("0"), D("0")]
    assert len(walleted.captured_queries) - len(plain.captured_queries) == 2, [
        q["sql"][:80] for q in walleted.captured_queries
    ]
    endpoints = 'SELECT "webhooks_webhookendpoint"'
    assert (starting(plain, endpoints), starting(walleted, endpoints)) == (2, 2)
    assert starting(walleted, "WITH locked AS MATERIALIZED") == 2
    # The chunk's read, once per run in both; no locking read of its own.
    assert (starting(plain, 'SELECT "invoicing_wallet"'), starting(walleted, 'SELECT "invoicing_wallet"')) == (2, 2)
