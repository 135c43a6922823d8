"""Prepaid credits consumed by the billing pipeline, worked by hand.

Every invoice below bills one month of a 20.00 USD plan (January 2024, in arrears) with a 20%
tax applied by the organization: fees 20.00, tax 4.00, sub total including taxes 24.00. Wallets
pay after coupons, taxes and credit notes (lago-doc guide/wallet-and-prepaid-credits/overview.mdx,
"Application scope": prepaid credits are deducted from the post-tax subtotal, after credit notes).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing import services
from invoicing.models import Invoice, InvoiceStatus, InvoiceType, PaymentStatus
from invoicing.wallets.models import TransactionKind, TransactionType, Wallet, WalletTransaction
from tests.factories.customers import make_customer
from tests.factories.invoicing import bill, events, only_invoice, subscribe, utc
from tests.factories.plans import make_plan, make_tax, metric, standard_charge
from tests.factories.wallets import make_wallet

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def taxed(db):
    make_tax(code="vat_20", rate="20", applied_to_organization=True)


def _invoice_for(customer, *, plan=None, external_id="sub_w") -> Invoice:
    plan = plan or make_plan(code=f"p_{external_id}", amount_cents=2000)
    subscribe(plan=plan, customer=customer, external_id=external_id)
    return only_invoice(bill(utc(2024, 2, 1, 0, 10)))


def test_ten_granted_credits_at_rate_one_leave_fourteen_due_and_an_empty_wallet(taxed):
    # Lago: 24.00 due, a wallet of 10 credits at 1.00 each pays 10.00 -> 14.00 due, balance 0
    # (Credits::AppliedPrepaidCreditsService; spec/services/credits/applied_prepaid_credits_service_spec.rb).
    customer = make_customer(external_id="c_rate1", currency="USD")
    wallet = make_wallet(customer=customer, granted_credits="10")
    assert (wallet.balance, wallet.credits_balance) == (D("10"), D("10"))

    invoice = _invoice_for(customer)

    assert invoice.sub_total_including_taxes_amount == D("24.00")
    assert invoice.prepaid_credit_amount == D("10.00")
    assert invoice.total_amount == D("14.00")
    assert invoice.total_due_amount == D("14.00")
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.credits_balance, wallet.consumed_credits) == (D("0"), D("0"), D("10"))
    (outbound,) = WalletTransaction.objects.filter(wallet=wallet, transaction_type=TransactionType.OUTBOUND)
    assert (outbound.transaction_status, outbound.amount, outbound.invoice_id) == ("invoiced", D("10"), invoice.pk)


def test_a_rate_of_one_half_makes_ten_credits_worth_five(taxed):
    customer = make_customer(external_id="c_rate05", currency="USD")
    wallet = make_wallet(customer=customer, rate_amount="0.5", granted_credits="10")
    assert wallet.balance == D("5.00")

    invoice = _invoice_for(customer)

    assert (invoice.prepaid_credit_amount, invoice.total_amount) == (D("5.00"), D("19.00"))
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.credits_balance) == (D("0"), D("0"))


def test_a_wallet_bigger_than_the_invoice_pays_it_all_and_keeps_the_rest(taxed):
    customer = make_customer(external_id="c_big", currency="USD")
    wallet = make_wallet(customer=customer, rate_amount="0.5", granted_credits="100")  # 50.00

    invoice = _invoice_for(customer)

    assert (invoice.prepaid_credit_amount, invoice.total_amount) == (D("24.00"), D("0"))
    assert invoice.payment_status == PaymentStatus.SUCCEEDED
    wallet.refresh_from_db()
    # 24.00 at 0.50 a credit is 48 credits: 52 left, worth 26.00.
    assert (wallet.balance, wallet.credits_balance) == (D("26.00"), D("52"))


def test_a_wallet_limited_to_one_metric_pays_only_that_metrics_fee_and_its_tax(taxed):
    # applies_to billable_metric_codes (Lago's wallet_targets): only the api_calls charge fee,
    # with its tax, can be paid; the 20.00 subscription fee and the storage fee cannot.
    calls, storage = metric("api_calls"), metric("storage", aggregation_type="count_agg")
    plan = make_plan(
        code="metered",
        amount_cents=2000,
        charges=[standard_charge("api_calls", amount="1"), standard_charge("storage", amount="1")],
    )
    customer = make_customer(external_id="c_metric", currency="USD")
    wallet = make_wallet(customer=customer, granted_credits="100", applies_to={"billable_metric_codes": [calls.code]})
    subscription = subscribe(plan=plan, customer=customer, external_id="sub_metric")
    events(subscription, [utc(2024, 1, 5)] * 3)  # api_calls 3 x 1.00 = 3.00, tax 0.60
    events(subscription, [utc(2024, 1, 6)] * 2, code=storage.code)  # storage 2.00, tax 0.40

    invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))

    assert invoice.sub_total_including_taxes_amount == D("30.00")  # (20 + 3 + 2) x 1.2
    assert (invoice.prepaid_credit_amount, invoice.total_amount) == (D("3.60"), D("26.40"))
    wallet.refresh_from_db()
    assert wallet.balance == D("96.40")


def test_a_wallet_limited_to_charges_leaves_the_subscription_fee_alone(taxed):
    customer = make_customer(external_id="c_fee_type", currency="USD")
    make_wallet(customer=customer, granted_credits="100", applies_to={"fee_types": ["charge"]})

    invoice = _invoice_for(customer)  # a subscription fee only

    assert (invoice.prepaid_credit_amount, invoice.total_amount) == (D("0"), D("24.00"))


def test_two_wallets_are_taken_by_priority_then_oldest_first(taxed):
    # spec/services/credits/applied_prepaid_credits_service_spec.rb: priority 49 before 50; among
    # equals, the oldest first (lago-doc .../overview.mdx).
    customer = make_customer(external_id="c_two", currency="USD")
    old = make_wallet(customer=customer, name="old", granted_credits="10")
    newer = make_wallet(customer=customer, name="newer", granted_credits="10")
    first = make_wallet(customer=customer, name="first", granted_credits="10", priority=1)

    invoice = _invoice_for(customer)

    assert (invoice.prepaid_credit_amount, invoice.total_amount) == (D("24.00"), D("0"))
    balances = {w.name: w.balance for w in Wallet.objects.filter(pk__in=[old.pk, newer.pk, first.pk])}
    assert balances == {"first": D("0"), "old": D("0"), "newer": D("6.00")}


def test_a_wallet_in_another_currency_only_pays_invoices_in_its_own(taxed):
    customer = make_customer(external_id="c_eur", currency="USD")
    euros = make_wallet(customer=customer, currency="EUR", granted_credits="10")
    assert euros.currency == "EUR"

    invoice = _invoice_for(customer)

    assert invoice.prepaid_credit_amount == D("0")
    euros.refresh_from_db()
    assert euros.balance == D("10")


def test_credit_notes_pay_before_the_wallet():
    from tests.factories.credit_notes import make_credit_note, make_invoice

    make_tax(code="vat_20", rate="20", applied_to_organization=True)
    customer = make_customer(external_id="c_cn", currency="USD")
    earlier = make_invoice(customer=customer, fees=[{"amount": "5.00"}])  # untaxed, 5.00 total
    make_credit_note(invoice=earlier)  # credits 5.00 for the customer's next invoices
    make_wallet(customer=customer, granted_credits="100")

    invoice = _invoice_for(customer, external_id="sub_cn")

    assert (invoice.credit_notes_amount, invoice.prepaid_credit_amount, invoice.total_amount) == (
        D("5.00"),
        D("19.00"),
        D("0"),
    )


def test_voiding_an_invoice_gives_its_credits_back(taxed):
    customer = make_customer(external_id="c_void", currency="USD")
    wallet = make_wallet(customer=customer, granted_credits="10")
    invoice = _invoice_for(customer)
    wallet.refresh_from_db()
    assert (wallet.consumed_credits, wallet.consumed_amount) == (D("10"), D("10"))

    services.invoice_void(invoice=invoice, actor="test")

    wallet.refresh_from_db()
    assert (wallet.balance, wallet.credits_balance) == (D("10"), D("10"))
    # Given back, no longer consumed (Lago: wallet_transactions/recredit_service.rb passes
    # reset_consumed_credits to wallets/balance/increase_service.rb).
    assert (wallet.consumed_credits, wallet.consumed_amount) == (D("0"), D("0"))
    back = WalletTransaction.objects.get(wallet=wallet, voided_invoice=invoice)
    assert (back.transaction_type, back.transaction_status, back.amount) == ("inbound", "granted", D("10"))
    # Voided once: nothing more to give back.
    from invoicing.wallets.consumption import invoice_recredit_prepaid_credits

    assert invoice_recredit_prepaid_credits(invoice=invoice) == 0


def test_one_off_and_credit_invoices_never_consume_credits():
    customer = make_customer(external_id="c_oneoff", currency="USD")
    wallet = make_wallet(customer=customer, granted_credits="10", paid_credits="5")
    credit_invoice = Invoice.objects.get(customer=customer, invoice_type=InvoiceType.CREDIT)
    assert (credit_invoice.status, credit_invoice.total_amount, credit_invoice.taxes_amount) == (
        InvoiceStatus.FINALIZED,
        D("5"),
        D("0"),
    )
    assert credit_invoice.prepaid_credit_amount == 0
    wallet.refresh_from_db()
    assert wallet.balance == D("10")
    assert WalletTransaction.objects.filter(transaction_status=TransactionKind.INVOICED).count() == 0


def test_paid_and_granted_split_of_balance_and_consumption(taxed, admin_client):
    # 10 granted and 20 paid credits at 1.00; the 24.00 invoice takes the granted ones first
    # (Lago's WalletTransaction.in_consumption_order: granted before purchased), then 14.00 paid.
    from dataclasses import astuple

    from invoicing.wallets.selectors import balance_split
    from payments.services import payment_create_manual

    customer = make_customer(external_id="c_split", currency="USD")
    wallet = make_wallet(customer=customer, granted_credits="10", paid_credits="20")
    credit_invoice = Invoice.objects.get(customer=customer, invoice_type=InvoiceType.CREDIT)
    payment_create_manual(invoice_id=credit_invoice.pk, amount_cents=2000, reference="wire")
    assert astuple(balance_split(wallet)) == (D("20"), D("10"), D("0"), D("0"))

    invoice = _invoice_for(customer)

    assert invoice.prepaid_credit_amount == D("24.00") and invoice.total_amount == D("0")
    assert astuple(balance_split(wallet)) == (D("6"), D("0"), D("14"), D("10"))
    page = admin_client.get(f"/admin/invoicing/wallet/{wallet.pk}/change/").content.decode()
    assert "Balance: USD 6.00 paid, USD 0.00 granted. Consumed by invoices: USD 14.00 paid, USD 10.00 granted." in page
