"""Reads of the wallets: the usage not invoiced yet that the ongoing balance subtracts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from plans.models import Subscription, SubscriptionStatus

from ..models import Invoice, InvoiceStatus, InvoiceType

ZERO = Decimal(0)


def customers_with_wallets_for_subscriptions(external_subscription_ids: Any) -> list[Any]:
    """The customers, among those of these subscriptions, that have an active wallet (one query)."""
    from .models import Wallet, WalletStatus

    return list(
        Wallet.objects.filter(
            status=WalletStatus.ACTIVE, customer__subscriptions__external_id__in=list(external_subscription_ids)
        )
        .values_list("customer_id", flat=True)
        .distinct()
    )


def customer_ongoing_usage(*, customer_id: Any, now: datetime) -> dict[str, Decimal]:
    """Per currency: the current usage of the customer's active subscriptions (with taxes),
    plus the totals of its draft subscription invoices. The usage is aggregated in SQL, a few
    queries per charge, never one per event."""
    from ..usage import customer_usage

    totals: dict[str, Decimal] = {}
    for currency, total in (
        Invoice.objects.filter(
            customer_id=customer_id, status=InvoiceStatus.DRAFT, invoice_type=InvoiceType.SUBSCRIPTION
        )
        .values_list("currency")
        .annotate(total=Sum("total_amount"))
    ):
        totals[currency] = totals.get(currency, ZERO) + (total or ZERO)
    for subscription in Subscription.objects.filter(customer_id=customer_id, status=SubscriptionStatus.ACTIVE):
        usage = customer_usage(subscription=subscription, at=now)
        totals[usage.currency] = totals.get(usage.currency, ZERO) + usage.total_amount
    return totals


@dataclass(frozen=True)
class Allocation:
    """How much of an inbound transaction an outbound one consumed."""

    inbound_id: Any
    outbound_id: Any
    amount: Decimal


def wallet_allocations(wallet: Any) -> list[Allocation]:
    """Which credits each outbound transaction spent, replayed from the ledger in time order:
    an outbound transaction takes from the settled inbound ones available at that moment in
    Lago's consumption order (priority, granted before purchased, oldest first; Lago's
    WalletTransaction.in_consumption_order). Derived, never stored: it cannot disagree with the
    ledger it is computed from."""
    from .models import TransactionKind, TransactionStatus, TransactionType, WalletTransaction

    rows = list(
        WalletTransaction.objects.filter(wallet=wallet, status=TransactionStatus.SETTLED).order_by(
            "settled_at", "created_at", "id"
        )
    )
    pool: list[list[Any]] = []  # [sort key, id, remaining]
    allocations: list[Allocation] = []
    for row in rows:
        if row.transaction_type == TransactionType.INBOUND:
            granted_first = 0 if row.transaction_status == TransactionKind.GRANTED else 1
            pool.append([(row.priority, granted_first, row.created_at, str(row.pk)), row.pk, row.amount])
            pool.sort(key=lambda item: item[0])
            continue
        wanted = row.amount
        for item in pool:
            if wanted <= 0:
                break
            take = min(item[2], wanted)
            if take <= 0:
                continue
            item[2] -= take
            wanted -= take
            allocations.append(Allocation(inbound_id=item[1], outbound_id=row.pk, amount=take))
    return allocations


def remaining_by_transaction(wallet: Any) -> dict[Any, Decimal]:
    """What is left of each settled inbound transaction (Lago's remaining_amount_cents)."""
    from .models import TransactionStatus, TransactionType, WalletTransaction

    remaining = {
        pk: amount
        for pk, amount in WalletTransaction.objects.filter(
            wallet=wallet, transaction_type=TransactionType.INBOUND, status=TransactionStatus.SETTLED
        ).values_list("pk", "amount")
    }
    for allocation in wallet_allocations(wallet):
        remaining[allocation.inbound_id] -= allocation.amount
    return remaining


@dataclass(frozen=True)
class BalanceSplit:
    """A wallet's money by where its credits came from: purchased (paid) or granted (offered,
    recredits of voided invoices included), what is left of each and what invoices consumed of
    each (Lago's consumption order, see wallet_allocations)."""

    paid_balance: Decimal
    granted_balance: Decimal
    paid_consumed: Decimal
    granted_consumed: Decimal


def balance_split(wallet: Any) -> BalanceSplit:
    """A few reads of the wallet's ledger, whatever its length in queries (the wallet page's figure)."""
    from .models import TransactionKind, TransactionStatus, WalletTransaction

    kinds = dict(
        WalletTransaction.objects.filter(wallet=wallet, status=TransactionStatus.SETTLED).values_list(
            "pk", "transaction_status"
        )
    )
    outbound_invoiced = {pk for pk, kind in kinds.items() if kind == TransactionKind.INVOICED}
    remaining = remaining_by_transaction(wallet)
    paid = sum((left for pk, left in remaining.items() if kinds.get(pk) == TransactionKind.PURCHASED), ZERO)
    granted = sum((left for pk, left in remaining.items() if kinds.get(pk) != TransactionKind.PURCHASED), ZERO)
    paid_consumed = granted_consumed = ZERO
    for allocation in wallet_allocations(wallet):
        if allocation.outbound_id not in outbound_invoiced:
            continue
        if kinds.get(allocation.inbound_id) == TransactionKind.PURCHASED:
            paid_consumed += allocation.amount
        else:
            granted_consumed += allocation.amount
    return BalanceSplit(paid, granted, paid_consumed, granted_consumed)
