"""The billing run's wallets: read once per chunk (RunContext.for_customers), consumed by one
guarded statement per invoice that writes only if the wallets still hold what the chunk read;
when they changed in between (another invoice consumed them, a top-up, a new priority) nothing
is written by it and the locked path (lock, read again, consume) pays the right amounts.

Every invoice bills one month of a 20.00 USD plan with a 20% tax: 24.00 due before credits.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from invoicing import runs, selectors, services
from invoicing.models import Invoice
from invoicing.wallets import services as wallet_services
from invoicing.wallets.models import TransactionKind, Wallet, WalletTransaction
from tests.concurrency import race
from tests.factories.customers import make_customer
from tests.factories.invoicing import subscribe, utc
from tests.factories.plans import make_plan, make_tax
from tests.factories.wallets import make_wallet

pytestmark = pytest.mark.postgres  # the guarded statement is PostgreSQL's (elsewhere: the locked path)

D = Decimal
AT = utc(2024, 2, 1, 0, 10)
GUARDED = "WITH locked AS MATERIALIZED"
LOCKING_READ = 'SELECT "invoicing_wallet"'
LOCKED_CONSUME = "WITH spent AS (INSERT"


def _starting(captured: CaptureQueriesContext, prefix: str) -> int:
    return sum(1 for q in captured.captured_queries if q["sql"].lstrip().startswith(prefix))


def _setup(*, subscriptions: tuple[str, ...] = ("sub_a", "sub_b")):
    make_tax(code="vat_20", rate="20", applied_to_organization=True)
    customer = make_customer(external_id="snap", currency="USD")
    plan = make_plan(amount_cents=2000)
    for external_id in subscriptions:
        subscribe(plan=plan, customer=customer, external_id=external_id)
    return customer


def _bill_with(context: services.RunContext, external_id: str) -> Invoice:
    """One due period billed as the run bills it, with a context read earlier."""
    (due,) = selectors.due_subscriptions(at=AT, subscription_external_id=external_id)
    return services.invoice_create_for_period(
        subscription=due.subscription, window=due.window, actor="test", context=context
    )


def _spent(wallet: Wallet) -> list[Decimal]:
    return sorted(
        WalletTransaction.objects.filter(wallet=wallet, transaction_status=TransactionKind.INVOICED).values_list(
            "amount", flat=True
        )
    )


@pytest.mark.django_db
def test_the_guarded_statement_pays_the_invoice_when_the_wallet_is_as_read():
    customer = _setup(subscriptions=("sub_a",))
    wallet = make_wallet(customer=customer, granted_credits="30")
    context = services.RunContext.for_customers([customer.pk])

    with CaptureQueriesContext(connection) as captured:
        invoice = _bill_with(context, "sub_a")

    assert (invoice.prepaid_credit_amount, invoice.total_amount) == (D("24.00"), D("0.00"))
    wallet.refresh_from_db()
    # 30 - 24 = 6 left, in credits too (rate 1); the consumption counted.
    assert (wallet.balance, wallet.credits_balance, wallet.consumed_credits) == (D("6"), D("6"), D("24"))
    assert (wallet.ongoing_balance, wallet.credits_ongoing_balance) == (D("6"), D("6"))
    assert _spent(wallet) == [D("24")]
    assert (_starting(captured, GUARDED), _starting(captured, LOCKING_READ), _starting(captured, LOCKED_CONSUME)) == (
        1,
        0,
        0,
    )


@pytest.mark.django_db
def test_another_invoice_consumed_the_wallet_since_the_chunk_read_the_locked_path_pays_what_is_left():
    customer = _setup()
    wallet = make_wallet(customer=customer, granted_credits="30")
    context = services.RunContext.for_customers([customer.pk])  # reads 30.00
    # Meanwhile sub_a's invoice is billed (its own run): 24.00 of the 30.00.
    assert runs.bill_due(at=AT, actor="test", subscription_external_id="sub_a").created == 1

    with CaptureQueriesContext(connection) as captured:
        invoice = _bill_with(context, "sub_b")

    # What is left, not what the chunk read: 6.00 of 24.00, 18.00 due.
    assert (invoice.prepaid_credit_amount, invoice.total_amount) == (D("6.00"), D("18.00"))
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.credits_balance, wallet.consumed_credits) == (D("0"), D("0"), D("30"))
    assert _spent(wallet) == [D("6"), D("24")]
    # The guarded statement refused (it wrote nothing), then the locked path.
    assert (_starting(captured, GUARDED), _starting(captured, LOCKING_READ), _starting(captured, LOCKED_CONSUME)) == (
        1,
        1,
        1,
    )


@pytest.mark.django_db
def test_a_wallet_emptied_since_the_chunk_read_pays_nothing():
    customer = _setup(subscriptions=("sub_a",))
    wallet = make_wallet(customer=customer, granted_credits="30")
    context = services.RunContext.for_customers([customer.pk])
    wallet_services.wallet_transactions_create(wallet=wallet, actor="test", voided_credits="30")

    invoice = _bill_with(context, "sub_a")

    assert (invoice.prepaid_credit_amount, invoice.total_amount) == (D("0"), D("24.00"))
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.consumed_credits) == (D("0"), D("0"))
    assert _spent(wallet) == []


@pytest.mark.django_db
def test_a_top_up_since_the_chunk_read_is_spent_too():
    customer = _setup(subscriptions=("sub_a",))
    wallet = make_wallet(customer=customer, granted_credits="10")
    context = services.RunContext.for_customers([customer.pk])  # reads 10.00
    wallet_services.wallet_transactions_create(wallet=wallet, actor="test", granted_credits="20")  # 30.00 now

    invoice = _bill_with(context, "sub_a")

    # 24.00 of the 30.00 the wallet holds, not the 10.00 the chunk read.
    assert (invoice.prepaid_credit_amount, invoice.total_amount) == (D("24.00"), D("0.00"))
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.credits_balance) == (D("6"), D("6"))
    assert _spent(wallet) == [D("24")]


@pytest.mark.django_db
def test_a_new_priority_since_the_chunk_read_changes_which_wallet_pays():
    customer = _setup(subscriptions=("sub_a",))
    first = make_wallet(customer=customer, code="first", granted_credits="10", priority=1)
    second = make_wallet(customer=customer, code="second", granted_credits="30", priority=5)
    context = services.RunContext.for_customers([customer.pk])  # first (1) before second (5)
    wallet_services.wallet_update(wallet=first, actor="test", priority=10)  # now second (5) first

    invoice = _bill_with(context, "sub_a")

    assert invoice.prepaid_credit_amount == D("24.00")
    first.refresh_from_db()
    second.refresh_from_db()
    # As read, first would have paid 10.00 and second 14.00; as they stand, second pays it all.
    assert (first.balance, second.balance) == (D("10"), D("6"))
    assert (_spent(first), _spent(second)) == ([], [D("24")])


@pytest.mark.django_db
def test_a_wallet_created_since_the_chunk_read_waits_for_the_next_invoice():
    """As a customer without a wallet at the chunk read skips the wallets (customers_with_wallets):
    the read is the run's view of the wallets, a change after it counts from the next invoice."""
    customer = _setup(subscriptions=("sub_a",))
    old = make_wallet(customer=customer, code="old", granted_credits="30")
    wallet_services.wallet_transactions_create(wallet=old, actor="test", voided_credits="30")  # empty
    context = services.RunContext.for_customers([customer.pk])
    new = make_wallet(customer=customer, code="new", granted_credits="30")

    with CaptureQueriesContext(connection) as captured:
        invoice = _bill_with(context, "sub_a")

    assert (invoice.prepaid_credit_amount, invoice.total_amount) == (D("0"), D("24.00"))
    new.refresh_from_db()
    assert new.balance == D("30")
    assert _starting(captured, GUARDED) + _starting(captured, LOCKING_READ) == 0


@pytest.mark.django_db(transaction=True)
def test_two_invoices_of_one_customer_in_one_chunk_both_take_the_guarded_path():
    """The chunk's read follows each committed consumption: the second invoice of the customer
    is checked against 6.00, not the 30.00 read before the first."""
    customer = _setup()
    wallet = make_wallet(customer=customer, granted_credits="30")

    with CaptureQueriesContext(connection) as captured:
        summary = runs.bill_due(at=AT, actor="test")

    assert summary.created == 2
    paid = sorted(Invoice.objects.filter(customer=customer).values_list("prepaid_credit_amount", flat=True))
    assert paid == [D("6.00"), D("24.00")]
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.credits_balance, wallet.consumed_credits) == (D("0"), D("0"), D("30"))
    # Both guarded; no fallback (its consumption statement never ran).
    assert (_starting(captured, GUARDED), _starting(captured, LOCKED_CONSUME)) == (2, 0)


@pytest.mark.django_db(transaction=True)
def test_two_run_finalizations_racing_on_one_wallet_never_spend_a_credit_twice():
    """Both chunks read 30.00 before either consumes: the first guarded statement pays 24.00; the
    second waits on the row lock, finds 6.00 instead of 30.00, writes nothing and pays the 6.00
    left through the locked path. Never 48.00 out of 30.00."""
    customer = _setup()
    wallet = make_wallet(customer=customer, granted_credits="30")
    queue = [
        (services.RunContext.for_customers([customer.pk]), "sub_a"),
        (services.RunContext.for_customers([customer.pk]), "sub_b"),
    ]

    def finalize():
        context, external_id = queue.pop()
        return _bill_with(context, external_id).prepaid_credit_amount

    results = race(finalize, 2)

    assert all(isinstance(r, Decimal) for r in results), results
    assert sorted(results) == [D("6.00"), D("24.00")]
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.credits_balance, wallet.consumed_credits) == (D("0"), D("0"), D("30"))
    assert _spent(wallet) == [D("6"), D("24")]


@pytest.mark.django_db(transaction=True)
def test_after_a_fallback_the_chunk_read_follows_the_locked_rows():
    """Read 30.00; a top-up of 20.00 commits; sub_a's guarded statement refuses, the locked path
    takes 24.00 of 50.00; once committed the chunk's read says 26.00, so sub_b's guarded
    statement holds and takes 24.00 more: 2.00 left."""
    customer = _setup()
    wallet = make_wallet(customer=customer, granted_credits="30")
    context = services.RunContext.for_customers([customer.pk])
    wallet_services.wallet_transactions_create(wallet=wallet, actor="test", granted_credits="20")

    with CaptureQueriesContext(connection) as first:
        assert _bill_with(context, "sub_a").prepaid_credit_amount == D("24.00")
    with CaptureQueriesContext(connection) as second:
        assert _bill_with(context, "sub_b").prepaid_credit_amount == D("24.00")

    wallet.refresh_from_db()
    assert (wallet.balance, wallet.credits_balance) == (D("2"), D("2"))
    assert (_starting(first, GUARDED), _starting(first, LOCKED_CONSUME)) == (1, 1)
    assert (_starting(second, GUARDED), _starting(second, LOCKED_CONSUME)) == (1, 0)


@pytest.mark.django_db(transaction=True)
def test_a_wallet_found_empty_by_the_locked_path_costs_the_next_invoice_nothing():
    customer = _setup()
    wallet = make_wallet(customer=customer, granted_credits="30")
    context = services.RunContext.for_customers([customer.pk])
    wallet_services.wallet_transactions_create(wallet=wallet, actor="test", voided_credits="30")

    assert _bill_with(context, "sub_a").prepaid_credit_amount == D("0")  # refused, then nothing locked
    with CaptureQueriesContext(connection) as captured:
        assert _bill_with(context, "sub_b").prepaid_credit_amount == D("0")

    assert _starting(captured, GUARDED) + _starting(captured, LOCKED_CONSUME) == 0
    assert not any("FOR UPDATE" in q["sql"] and '"invoicing_wallet"' in q["sql"] for q in captured.captured_queries)
