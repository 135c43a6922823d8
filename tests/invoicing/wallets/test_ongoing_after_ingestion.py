"""The ongoing balance follows ingestion: after each batch commits, the wallets of its customers
are refreshed in a task (one query to find them, none per event), throttled by
TOLLGATE_WALLET_ONGOING_REFRESH_SECONDS; wallet.depleted_ongoing_balance fires once per crossing."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from invoicing.wallets import services, signals
from tests.factories.customers import make_customer
from tests.factories.invoicing import subscribe
from tests.factories.plans import make_plan, standard_charge
from tests.factories.wallets import make_wallet

pytestmark = pytest.mark.django_db

D = Decimal
_tx = itertools.count()


def _ingest(api, capture, count: int, subscription: str = "sub_live") -> None:
    now = timezone.now()
    batch = [
        {
            "transaction_id": f"tx_live_{next(_tx)}",
            "external_subscription_id": subscription,
            "code": "api_calls",
            "timestamp": (now - timedelta(minutes=1)).timestamp(),
        }
        for _ in range(count)
    ]
    with capture(execute=True):
        answer = api.post("/api/v1/events/batch", {"events": batch})
    assert answer.status_code == 200, answer.content


@pytest.fixture
def live(db):
    customer = make_customer(external_id="live", currency="USD")
    wallet = make_wallet(customer=customer, granted_credits="10")
    plan = make_plan(code="live", amount_cents=0, charges=[standard_charge(amount="1")])
    subscribe(plan=plan, customer=customer, external_id="sub_live", start=timezone.now() - timedelta(days=1))
    # A customer without a wallet: its batches schedule nothing.
    other = make_customer(external_id="nowallet", currency="USD")
    subscribe(plan=plan, customer=other, external_id="sub_nowallet", start=timezone.now() - timedelta(days=1))
    return wallet


def test_a_batch_refreshes_the_ongoing_balance_once_per_crossing(
    api, live, settings, django_capture_on_commit_callbacks
):
    settings.TOLLGATE_WALLET_ONGOING_REFRESH_SECONDS = 0
    depleted: list[object] = []
    signals.wallet_depleted_ongoing_balance.connect(
        lambda sender, wallet_id, **kw: depleted.append(wallet_id), weak=False, dispatch_uid="t:depleted"
    )
    try:
        _ingest(api, django_capture_on_commit_callbacks, 4)
        live.refresh_from_db()
        # 10 granted credits at rate 1, 4 events at 1.00 each not invoiced yet.
        assert (live.balance, live.ongoing_usage_balance, live.ongoing_balance) == (D("10"), D("4"), D("6"))
        assert not live.depleted_ongoing_balance and depleted == []

        _ingest(api, django_capture_on_commit_callbacks, 7)
        live.refresh_from_db()
        assert (live.ongoing_balance, live.depleted_ongoing_balance) == (D("0"), True)
        assert depleted == [live.pk]
        _ingest(api, django_capture_on_commit_callbacks, 3)  # still below: no second announcement
        assert depleted == [live.pk]

        # Topped up above the usage (14 now), the next batch rearms it; falling again fires again.
        services.wallet_transactions_create(wallet=live, actor="test", granted_credits="10")
        _ingest(api, django_capture_on_commit_callbacks, 1)
        live.refresh_from_db()
        assert (live.ongoing_balance, live.depleted_ongoing_balance) == (D("5"), False)
        _ingest(api, django_capture_on_commit_callbacks, 6)
        assert depleted == [live.pk, live.pk]
    finally:
        signals.wallet_depleted_ongoing_balance.disconnect(dispatch_uid="t:depleted")


def test_a_burst_costs_one_refresh_and_a_batch_of_no_wallet_costs_one_query(
    api, live, django_capture_on_commit_callbacks
):
    _ingest(api, django_capture_on_commit_callbacks, 2)
    live.refresh_from_db()
    synced = live.last_ongoing_balance_sync_at
    assert synced is not None and live.ongoing_balance == D("8")
    _ingest(api, django_capture_on_commit_callbacks, 3)  # within 30 s: left to the periodic task
    live.refresh_from_db()
    assert live.last_ongoing_balance_sync_at == synced and live.ongoing_balance == D("8")
    assert services.wallets_ongoing_balance_refresh() == 1
    live.refresh_from_db()
    assert live.ongoing_balance == D("5")

    # A batch for a customer without wallets: after commit, one query finds no wallet.
    from invoicing.receivers import refresh_wallets_after_ingestion

    for ids in (["sub_nowallet"], [f"sub_nowallet_{n}" for n in range(200)]):
        with CaptureQueriesContext(connection) as queries:
            refresh_wallets_after_ingestion(sender=None, external_subscription_ids=ids)
        assert len(queries) == 1
