"""A terminated wallet's alerts, as Lago's Wallets::TerminateService leaves them (read in
getlago/lago-api app/services/wallets/terminate_service.rb, usage_monitoring/create_alert_service.rb
and update_alert_service.rb: `process_wallet_alerts` returns unless the wallet is active):
kept and listed, never evaluated again, not even by the void of the remaining credits that
terminating records here. The customer's other wallets are refreshed (Lago flags the customer:
`flag_wallets_for_refresh`), which evaluates their alerts.

The worked case: wallet `a` (priority 1, 10 credits) and `b` (priority 2, 30 credits), rate 1,
15.00 of usage not invoiced yet (15 events at 1.00). Ongoing: `a` covers 10.00 of it (ongoing 0),
`b` covers 5.00 (ongoing 25.00 = 2500 cents). Alerts: `a` balance at or below 500 cents, `b`
ongoing balance at or below 2000 cents. Terminating `a` voids its 10.00 (its balance falls to 0,
through 500: no alert), and `b` now covers all 15.00: ongoing 15.00 = 1500 cents, through 2000.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from invoicing.models import Alert, TriggeredAlert
from invoicing.wallets import services, tasks
from invoicing.wallets.models import TransactionKind, Wallet, WalletStatus
from tests.factories.customers import make_customer
from tests.factories.invoicing import events, subscribe
from tests.factories.plans import make_plan, standard_charge
from tests.factories.wallets import make_wallet

pytestmark = pytest.mark.django_db

D = Decimal
BASE = "/api/v1/customers/ended/wallets"


@pytest.fixture
def case(api, django_capture_on_commit_callbacks):
    customer = make_customer(external_id="ended", currency="USD")
    a = make_wallet(customer=customer, code="a", granted_credits="10", priority=1)
    b = make_wallet(customer=customer, code="b", granted_credits="30", priority=2)
    plan = make_plan(code="ended", amount_cents=0, charges=[standard_charge(amount="1")])
    now = timezone.now()
    subscription = subscribe(plan=plan, customer=customer, external_id="sub_ended", start=now - timedelta(days=1))
    events(subscription, [now - timedelta(minutes=1)] * 15)
    services.wallets_ongoing_balance_refresh(customer_ids=[customer.pk])
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.ongoing_balance, b.ongoing_balance) == (D("0"), D("25"))
    for code, alert_type, value in (
        ("a", "wallet_balance_amount", "500"),
        ("b", "wallet_ongoing_balance_amount", "2000"),
    ):
        answer = api.post(
            f"{BASE}/{code}/alerts",
            {"alert": {"alert_type": alert_type, "code": f"low_{code}", "thresholds": [{"value": value}]}},
            format="json",
        )
        assert answer.status_code == 200, answer.json()
    assert TriggeredAlert.objects.count() == 0
    return a, b


def _by_api(api, admin_client, wallet: Wallet) -> None:
    assert api.delete(f"/api/v1/wallets/{wallet.pk}").status_code == 200


def _by_admin(api, admin_client, wallet: Wallet) -> None:
    answer = admin_client.post(
        "/admin/invoicing/wallet/", {"action": "terminate_wallets", "_selected_action": [str(wallet.pk)]}
    )
    assert answer.status_code == 302


def _by_expiry(api, admin_client, wallet: Wallet) -> None:
    Wallet.objects.filter(pk=wallet.pk).update(expiration_at=timezone.now() - timedelta(minutes=1))
    assert tasks.expire_wallets() == 1


@pytest.mark.parametrize("terminate", [_by_api, _by_admin, _by_expiry], ids=["api", "admin", "expiry"])
def test_terminating_a_wallet_keeps_its_alerts_unevaluated_and_refreshes_the_others(
    case, terminate, api, admin_client, django_capture_on_commit_callbacks
):
    a, b = case

    with django_capture_on_commit_callbacks(execute=True):
        terminate(api, admin_client, a)

    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.status, a.balance) == (WalletStatus.TERMINATED, D("0"))
    assert a.transactions.filter(transaction_status=TransactionKind.VOIDED, credit_amount=D("10")).count() == 1
    # `a`'s alert: no crossing although its balance fell from 1000 to 0 cents; kept as it was.
    assert not TriggeredAlert.objects.filter(wallet=a).exists()
    listed: Any = api.get(f"{BASE}/a/alerts").json()
    assert [(x["code"], x["previous_value"]) for x in listed["alerts"]] == [("low_a", "1000")]
    assert Alert.objects.filter(wallet=a, deleted_at__isnull=True).count() == 1
    # `b` covers the 15.00 now: 30.00 - 15.00 = 15.00, 1500 cents, through its 2000.
    assert (b.balance, b.ongoing_balance) == (D("30"), D("15"))
    ((value, crossed),) = TriggeredAlert.objects.filter(wallet=b).values_list("current_value", "crossed_thresholds")
    assert (value, crossed) == (D(1500), [{"code": None, "value": "2000", "recurring": False}])


def test_a_terminated_wallets_alert_changed_afterwards_is_still_not_evaluated(case, api):
    a, _ = case
    services.wallet_terminate(wallet=a, actor="test")

    # Thresholds above what the terminated wallet holds (0): Lago's UpdateAlertService skips
    # processing for a wallet that is not active.
    answer = api.put(f"{BASE}/a/alerts/low_a", {"alert": {"thresholds": [{"value": "900"}]}}, format="json")

    assert answer.status_code == 200, answer.json()
    assert [t["value"] for t in answer.json()["alert"]["thresholds"]] == ["900"]
    assert not TriggeredAlert.objects.filter(wallet=a).exists()
