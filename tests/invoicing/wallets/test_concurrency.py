"""Races against PostgreSQL: two invoices of one customer finalizing at once on one wallet never
spend a credit twice; a retried top-up task credits once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing import services
from invoicing.models import Invoice, InvoiceStatus
from invoicing.wallets import services as wallet_services
from invoicing.wallets.models import TransactionKind, Wallet, WalletTransaction
from tests.concurrency import race
from tests.factories.customers import make_customer
from tests.factories.invoicing import bill, subscribe, utc
from tests.factories.plans import make_plan, make_tax
from tests.factories.wallets import make_wallet

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

D = Decimal


def test_two_finalizations_on_one_wallet_never_spend_a_credit_twice():
    make_tax(code="vat_20", rate="20", applied_to_organization=True)
    customer = make_customer(external_id="race", currency="USD", invoice_grace_period=5)
    plan = make_plan(amount_cents=2000)
    subscribe(plan=plan, customer=customer, external_id="race_a")
    subscribe(plan=plan, customer=customer, external_id="race_b")
    assert bill(utc(2024, 2, 1, 0, 10)).created == 2  # two drafts of 24.00 each
    wallet = make_wallet(customer=customer, granted_credits="30")
    drafts = list(Invoice.objects.filter(status=InvoiceStatus.DRAFT).values_list("pk", flat=True))
    queue = list(drafts)

    def finalize():
        return services.invoice_finalize(invoice=Invoice(pk=queue.pop()), actor="test").prepaid_credit_amount

    results = race(finalize, 2)

    assert all(isinstance(r, Decimal) for r in results), results
    assert sorted(results) == [D("6.00"), D("24.00")]
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.credits_balance) == (D("0"), D("0"))
    spent = WalletTransaction.objects.filter(wallet=wallet, transaction_status=TransactionKind.INVOICED)
    assert sum(row.amount for row in spent) == D("30")


def test_a_retried_interval_top_up_credits_once():
    customer = make_customer(external_id="retry", currency="USD")
    wallet = make_wallet(
        customer=customer,
        recurring_transaction_rules=[
            {"trigger": "interval", "interval": "monthly", "granted_credits": "5", "started_at": "2024-01-01T00:00:00Z"}
        ],
    )
    rule = wallet.recurring_transaction_rules.get()

    results = race(lambda: wallet_services.wallet_interval_top_up(rule_id=rule.pk, now=utc(2024, 2, 1, 1)), 2)

    assert sorted(results) == [False, True], results
    wallet.refresh_from_db()
    assert wallet.credits_balance == D("5")
    assert Wallet.objects.get(pk=wallet.pk).transactions.filter(recurring_rule=rule).count() == 1
