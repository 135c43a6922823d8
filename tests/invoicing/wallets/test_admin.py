"""Wallets in the console: on the customer page, added with a first top-up, topped up and voided
on the wallet page, terminated by an action; all through the wallet services."""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing.models import Invoice, InvoiceType
from invoicing.wallets.models import Wallet, WalletStatus
from tests.factories.customers import make_customer
from tests.factories.wallets import make_wallet

pytestmark = pytest.mark.django_db

D = Decimal


def test_the_customer_page_lists_the_wallets_with_their_balances(admin_client):
    customer = make_customer(external_id="adm", currency="USD")
    make_wallet(customer=customer, name="Trial credits", granted_credits="12.5")
    page = admin_client.get(f"/admin/customers/customer/{customer.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Wallets (prepaid credits)" in body and "Trial credits" in body and "12.5" in body


def test_add_top_up_void_and_terminate_through_the_admin(admin_client):
    customer = make_customer(external_id="adm2", currency="USD")
    answer = admin_client.post(
        "/admin/invoicing/wallet/add/",
        {
            "customer": customer.pk,
            "name": "Console",
            "code": "",
            "currency": "",
            "rate_amount": "1",
            "priority": "50",
            "initial_granted_credits": "5",
            "initial_paid_credits": "",
            "transactions-TOTAL_FORMS": "0",
            "transactions-INITIAL_FORMS": "0",
        },
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    wallet = Wallet.objects.get(customer=customer)
    assert (wallet.credits_balance, wallet.currency) == (D("5"), "USD")

    answer = admin_client.post(
        f"/admin/invoicing/wallet/{wallet.pk}/change/",
        {
            "name": "Console",
            "priority": "10",
            "top_up_paid_credits": "3",
            "top_up_granted_credits": "2",
            "void_credits": "1",
            "transactions-TOTAL_FORMS": "0",
            "transactions-INITIAL_FORMS": "3",
        },
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    wallet.refresh_from_db()
    assert (wallet.priority, wallet.credits_balance) == (10, D("6"))  # 5 + 2 - 1; the 3 paid are pending
    assert Invoice.objects.filter(customer=customer, invoice_type=InvoiceType.CREDIT).count() == 1

    answer = admin_client.post(
        "/admin/invoicing/wallet/", {"action": "terminate_wallets", "_selected_action": [str(wallet.pk)]}
    )
    assert answer.status_code == 302
    wallet.refresh_from_db()
    assert (wallet.status, wallet.balance) == (WalletStatus.TERMINATED, 0)


def test_the_wallet_list_shows_money_as_money(admin_client):
    make_wallet(customer=make_customer(external_id="adm_money", currency="USD"), granted_credits="1234.5")
    page = admin_client.get("/admin/invoicing/wallet/").content.decode()
    assert "USD 1,234.50" in page and "1234.500000" not in page


def _page(admin_client, customer) -> str:
    page = admin_client.get(f"/admin/customers/customer/{customer.pk}/change/")
    assert page.status_code == 200
    return page.content.decode()


def test_the_customer_page_shows_each_wallets_alerts(admin_client, django_assert_num_queries):
    from invoicing.monitoring import alerts
    from invoicing.monitoring.models import TriggeredAlert
    from invoicing.wallets import admin as wallet_admin
    from invoicing.wallets import services

    customer = make_customer(external_id="adm_alerts", currency="USD")
    assert "No wallet" in _page(admin_client, customer)
    main = make_wallet(customer=customer, name="Main", code="main", granted_credits="100")
    spare = make_wallet(customer=customer, name="Spare", code="spare", granted_credits="10")
    assert "No wallet alert" in _page(admin_client, customer)
    alerts.alert_create(
        wallet=main,
        data={
            "alert_type": "wallet_balance_amount",
            "code": "low_balance",
            "name": "Low balance",
            "thresholds": [{"code": "warn", "value": "8000"}, {"code": "critical", "value": "5000"}],
        },
    )
    alerts.alert_create(
        wallet=spare,
        data={
            "alert_type": "wallet_credits_ongoing_balance",
            "code": "spare_credits",
            "thresholds": [{"value": "4"}, {"value": "1", "recurring": True}],
        },
    )
    gone = alerts.alert_create(
        wallet=spare,
        data={"alert_type": "wallet_credits_balance", "code": "removed_alert", "thresholds": [{"value": "2"}]},
    )
    alerts.alert_delete(alert=gone)
    # 100.00 -> 75.00 (7500 cents): through 8000, the `warn` threshold.
    services.wallet_transactions_create(wallet=main, actor="test", voided_credits="25")
    (triggered,) = TriggeredAlert.objects.all()

    body = _page(admin_client, customer)

    assert "Wallet alerts" in body
    # Amount types hold cents (Lago's), shown with the money they mean; credit types, credits.
    row = body[body.index("low_balance") :].split("</tr>")[0]
    assert "Low balance" in row and "wallet_balance_amount" in row
    assert "critical: 5000 (USD 50.00); warn: 8000 (USD 80.00)" in row
    assert triggered.triggered_at.isoformat(timespec="seconds") in row
    row = body[body.index("spare_credits") :].split("</tr>")[0]
    assert "wallet_credits_ongoing_balance" in row and "every 1 credits; 4 credits" in row
    assert "never" in row
    assert "removed_alert" not in body
    # The alerts of every wallet in two queries (alerts with their last triggering, thresholds).
    with django_assert_num_queries(2):
        wallet_admin._wallet_alerts([main, spare])
