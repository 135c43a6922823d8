"""Wallet services: top-ups (paid through a credit invoice, granted at once), voided credits,
termination and expiry, the six-wallet limit, recurring rules (interval and threshold), the
ongoing balance, and the signals the webhooks app connects to."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from invoicing.errors import InvoicingError
from invoicing.models import Invoice, InvoiceType
from invoicing.wallets import services, signals
from invoicing.wallets.models import (
    TransactionKind,
    TransactionStatus,
    Wallet,
    WalletStatus,
    WalletTransaction,
)
from payments.services import payment_create_manual
from tests.factories.customers import make_customer
from tests.factories.invoicing import utc
from tests.factories.wallets import make_wallet

pytestmark = pytest.mark.django_db

D = Decimal


def test_paid_credits_settle_only_when_their_credit_invoice_is_paid():
    # Lago: purchased credits count once the credit invoice is paid (jobs/invoices/prepaid_credit_job.rb).
    customer = make_customer(external_id="paid", currency="USD")
    wallet = make_wallet(customer=customer, rate_amount="2", paid_credits="15")
    invoice = Invoice.objects.get(customer=customer, invoice_type=InvoiceType.CREDIT)
    assert (invoice.total_amount, invoice.taxes_amount, invoice.payment_status) == (D("30"), D("0"), "pending")
    assert invoice.number and invoice.fees.get().fee_type == "credit"
    purchase = WalletTransaction.objects.get(wallet=wallet)
    assert (purchase.status, purchase.transaction_status) == (TransactionStatus.PENDING, TransactionKind.PURCHASED)
    wallet.refresh_from_db()
    assert wallet.balance == 0

    payment_create_manual(invoice_id=invoice.pk, amount_cents=3000, reference="wire 42")

    purchase.refresh_from_db()
    wallet.refresh_from_db()
    assert purchase.status == TransactionStatus.SETTLED
    assert (wallet.balance, wallet.credits_balance) == (D("30"), D("15"))
    # A second "paid" (the sweep, a retried webhook) settles nothing more.
    from invoicing.wallets.consumption import invoice_paid_settle_credits

    assert invoice_paid_settle_credits(invoice=Invoice.objects.get(pk=invoice.pk)) == 0
    wallet.refresh_from_db()
    assert wallet.credits_balance == D("15")


def test_marking_the_credit_invoice_paid_through_the_api_settles_too(api):
    customer = make_customer(external_id="paid_api", currency="USD")
    wallet = make_wallet(customer=customer, paid_credits="10")
    invoice = Invoice.objects.get(customer=customer, invoice_type=InvoiceType.CREDIT)
    answer = api.put(f"/api/v1/invoices/{invoice.pk}", {"invoice": {"payment_status": "succeeded"}})
    assert answer.status_code == 200
    wallet.refresh_from_db()
    assert wallet.credits_balance == D("10")


def test_paid_top_up_limits_use_lagos_codes():
    customer = make_customer(external_id="limits", currency="USD")
    wallet = make_wallet(customer=customer, paid_top_up_min_amount_cents=500, paid_top_up_max_amount_cents=10000)
    with pytest.raises(InvoicingError) as low:
        services.wallet_transactions_create(wallet=wallet, actor="test", paid_credits="4")
    with pytest.raises(InvoicingError) as high:
        services.wallet_transactions_create(wallet=wallet, actor="test", paid_credits="101")
    assert (low.value.details, high.value.details) == (
        {"paid_credits": ["amount_below_minimum"]},
        {"paid_credits": ["amount_above_maximum"]},
    )
    assert services.wallet_transactions_create(
        wallet=wallet, actor="test", paid_credits="101", ignore_paid_top_up_limits=True
    )


def test_voided_credits_leave_at_once_and_never_more_than_the_balance():
    wallet = make_wallet(customer=make_customer(external_id="void", currency="USD"), granted_credits="10")
    with pytest.raises(InvoicingError) as refused:
        services.wallet_transactions_create(wallet=wallet, actor="test", voided_credits="11")
    assert refused.value.details == {"voided_credits": ["insufficient_credits"]}
    (row,) = services.wallet_transactions_create(wallet=wallet, actor="test", voided_credits="4")
    assert (row.transaction_type, row.transaction_status, row.status) == ("outbound", "voided", "settled")
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.credits_balance) == (D("6"), D("6"))


def test_the_balance_can_never_go_below_zero_in_the_database():
    wallet = make_wallet(customer=make_customer(external_id="check", currency="USD"), granted_credits="1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Wallet.objects.filter(pk=wallet.pk).update(balance=D("-0.01"))


def test_terminating_records_the_remaining_credits_as_voided_and_refuses_top_ups():
    wallet = make_wallet(customer=make_customer(external_id="term", currency="USD"), granted_credits="7")
    services.wallet_terminate(wallet=wallet, actor="test")
    wallet.refresh_from_db()
    assert (wallet.status, wallet.balance, wallet.credits_balance) == (WalletStatus.TERMINATED, 0, 0)
    voided = wallet.transactions.get(transaction_status=TransactionKind.VOIDED)
    assert (voided.credit_amount, voided.name) == (D("7"), "terminated")
    with pytest.raises(InvoicingError) as refused:
        services.wallet_transactions_create(wallet=wallet, actor="test", granted_credits="1")
    assert refused.value.details == {"wallet": ["wallet_is_terminated"]}


def test_an_expired_wallet_is_terminated_by_the_periodic_task_and_its_credits_recorded_expired():
    now = timezone.now()
    wallet = make_wallet(
        customer=make_customer(external_id="exp", currency="USD"),
        granted_credits="3",
        expiration_at=(now + timedelta(days=1)).isoformat(),
    )
    assert services.wallets_expire(now=now) == 0
    assert services.wallets_expire(now=now + timedelta(days=2)) == 1
    wallet.refresh_from_db()
    assert wallet.status == WalletStatus.TERMINATED and wallet.balance == 0
    assert wallet.transactions.get(transaction_status=TransactionKind.VOIDED).name == "expired"
    assert services.wallets_expire(now=now + timedelta(days=3)) == 0


def test_six_active_wallets_per_customer_and_the_seventh_is_refused():
    # Lago's Wallets::ValidateService::MAXIMUM_WALLETS_PER_CUSTOMER = 6 (app/services/wallets/validate_service.rb).
    customer = make_customer(external_id="six", currency="USD")
    wallets = [make_wallet(customer=customer, name="Credits") for _ in range(6)]
    assert len({w.code for w in wallets}) == 6  # same name, same second: distinct default codes
    with pytest.raises(InvoicingError) as refused:
        make_wallet(customer=customer)
    assert refused.value.details == {"customer": ["wallet_limit_reached"]}
    services.wallet_terminate(wallet=wallets[0], actor="test")
    assert make_wallet(customer=customer).status == WalletStatus.ACTIVE


def test_validation_codes():
    customer = make_customer(external_id="codes", currency="USD")
    cases = [
        ({"customer": None}, {"customer": ["customer_not_found"]}),
        ({"priority": 0}, {"priority": ["value_is_out_of_range"]}),
        ({"rate_amount": "0"}, {"rate_amount": ["value_is_out_of_range"]}),
        ({"granted_credits": "x"}, {"granted_credits": ["invalid_granted_credits"]}),
        ({"applies_to": {"fee_types": ["nope"]}}, {"applies_to": ["invalid_limitations"]}),
        ({"applies_to": {"billable_metric_codes": ["missing"]}}, {"applies_to": ["invalid_limitations"]}),
    ]
    for fields, details in cases:
        params = {"customer": customer, "rate_amount": "1", **fields}
        with pytest.raises(InvoicingError) as refused:
            services.wallet_create(actor="test", **params)
        assert refused.value.details == details, fields


def test_an_interval_rule_tops_up_once_per_interval():
    wallet = make_wallet(
        customer=make_customer(external_id="interval", currency="USD"),
        recurring_transaction_rules=[
            {"trigger": "interval", "interval": "weekly", "granted_credits": "2", "started_at": "2024-01-01T00:00:00Z"}
        ],
    )
    assert services.recurring_interval_top_ups(now=utc(2024, 1, 7)) == 0  # before the first boundary
    assert services.recurring_interval_top_ups(now=utc(2024, 1, 8, 1)) == 1
    assert services.recurring_interval_top_ups(now=utc(2024, 1, 9)) == 0  # same interval: nothing
    assert services.recurring_interval_top_ups(now=utc(2024, 1, 15, 1)) == 1
    wallet.refresh_from_db()
    assert wallet.credits_balance == D("4")
    assert set(wallet.transactions.values_list("source", flat=True)) == {"interval"}


def test_a_threshold_rule_fires_once_per_crossing():
    wallet = make_wallet(
        customer=make_customer(external_id="threshold", currency="USD"),
        granted_credits="10",
        recurring_transaction_rules=[{"trigger": "threshold", "threshold_credits": "5", "granted_credits": "20"}],
    )
    services.wallet_transactions_create(wallet=wallet, actor="test", voided_credits="6")  # 4 left: crossed
    assert services.wallet_threshold_check(wallet_id=wallet.pk) is True
    assert services.wallet_threshold_check(wallet_id=wallet.pk) is False  # a retry: the same crossing
    wallet.refresh_from_db()
    assert wallet.credits_balance == D("24")
    services.wallet_transactions_create(wallet=wallet, actor="test", voided_credits="20")  # 4 again: a new crossing
    assert services.wallet_threshold_check(wallet_id=wallet.pk) is True
    wallet.refresh_from_db()
    assert wallet.credits_balance == D("24")
    assert wallet.transactions.filter(source="threshold").count() == 2


def test_a_target_rule_tops_up_to_the_target():
    wallet = make_wallet(
        customer=make_customer(external_id="target", currency="USD"),
        granted_credits="10",
        recurring_transaction_rules=[
            {"trigger": "threshold", "method": "target", "threshold_credits": "3", "target_ongoing_balance": "50"}
        ],
    )
    services.wallet_transactions_create(wallet=wallet, actor="test", voided_credits="8")  # 2 left
    assert services.wallet_threshold_check(wallet_id=wallet.pk) is True
    purchase = wallet.transactions.get(source="threshold")
    assert (purchase.transaction_status, purchase.credit_amount, purchase.status) == ("purchased", D("48"), "pending")


def test_ongoing_balance_subtracts_the_usage_not_invoiced_and_signals_depletion():
    from tests.factories.invoicing import events, subscribe
    from tests.factories.plans import make_plan, standard_charge

    customer = make_customer(external_id="ongoing", currency="USD")
    wallet = make_wallet(customer=customer, granted_credits="10")
    now = timezone.now()
    plan = make_plan(code="ongoing", amount_cents=0, charges=[standard_charge(amount="1")])
    subscription = subscribe(plan=plan, customer=customer, external_id="sub_ongoing", start=now - timedelta(days=1))
    events(subscription, [now - timedelta(minutes=5)] * 4)
    depleted: list[object] = []

    def on_depleted(sender, wallet_id, **kwargs):
        depleted.append(wallet_id)

    signals.wallet_depleted_ongoing_balance.connect(on_depleted, dispatch_uid="test:depleted")

    assert services.wallets_ongoing_balance_refresh(now=now) == 1
    wallet.refresh_from_db()
    assert (wallet.ongoing_usage_balance, wallet.ongoing_balance, wallet.balance) == (D("4"), D("6"), D("10"))
    events(subscription, [now - timedelta(minutes=4)] * 10)
    services.wallets_ongoing_balance_refresh(now=now)
    wallet.refresh_from_db()
    assert (wallet.ongoing_balance, wallet.depleted_ongoing_balance) == (D("0"), True)
    signals.wallet_depleted_ongoing_balance.disconnect(dispatch_uid="test:depleted")
    assert depleted == [wallet.pk]


def test_signals_are_sent_inside_the_transaction_of_the_change():
    seen: list[tuple[str, bool]] = []

    def receiver(name):
        return lambda sender, **kwargs: seen.append((name, connection.in_atomic_block))

    handlers = {name: receiver(name) for name in signals.WEBHOOK_NAMES}
    for name, signal in signals.WEBHOOK_NAMES.items():
        signal.connect(handlers[name], dispatch_uid=f"test:{name}")
    try:
        wallet = make_wallet(customer=make_customer(external_id="sig", currency="USD"), granted_credits="1")
        services.wallet_update(wallet=wallet, actor="test", name="renamed")
        services.wallet_terminate(wallet=wallet, actor="test")
    finally:
        for name, signal in signals.WEBHOOK_NAMES.items():
            signal.disconnect(dispatch_uid=f"test:{name}")
    names = [name for name, _ in seen]
    assert names[:2] == ["wallet.created", "wallet_transaction.created"]
    assert {"wallet.updated", "wallet.terminated"} <= set(names)
    assert all(inside for _, inside in seen)
