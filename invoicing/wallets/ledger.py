"""The wallet ledger's two primitives, used by every wallet service: lock wallets (always in
one order, so two workers never deadlock) and write a transaction that moves the balance.
Both run inside the caller's transaction; the balance CHECK is the last word on overdraft."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from billing_project.money import round_amount

from . import signals
from .models import TransactionKind, TransactionStatus, TransactionType, Wallet, WalletTransaction

ZERO = Decimal(0)


def lock_wallets(queryset: QuerySet[Wallet]) -> list[Wallet]:
    """The wallets of `queryset` with their rows locked until commit, in id order."""
    assert transaction.get_connection().in_atomic_block, "wallets are locked inside the caller's transaction"
    return list(queryset.select_for_update(of=("self",)).order_by("id"))


def lock_wallet(wallet: Wallet | Any) -> Wallet:
    pk = wallet.pk if isinstance(wallet, Wallet) else wallet
    return Wallet.objects.select_for_update(of=("self",)).select_related("customer").get(pk=pk)


def apply_to_balance(wallet: Wallet, *, amount: Decimal, credits: Decimal, inbound: bool) -> None:
    """Move a locked wallet's balances in memory (the caller saves)."""
    sign = 1 if inbound else -1
    wallet.balance = round_amount(wallet.balance + sign * amount, wallet.currency)
    wallet.credits_balance = wallet.credits_balance + sign * credits
    wallet.ongoing_balance = round_amount(wallet.ongoing_balance + sign * amount, wallet.currency)
    wallet.credits_ongoing_balance = wallet.credits_ongoing_balance + sign * credits
    wallet.last_balance_sync_at = timezone.now()


BALANCE_FIELDS = [
    "balance",
    "credits_balance",
    "ongoing_balance",
    "credits_ongoing_balance",
    "consumed_amount",
    "consumed_credits",
    "last_balance_sync_at",
    "last_consumed_credit_at",
    "updated_at",
]


def transaction_record(
    wallet: Wallet,
    *,
    transaction_type: str,
    status: str,
    kind: str,
    credits: Decimal,
    amount: Decimal | None = None,
    save_wallet: bool = True,
    **fields: Any,
) -> WalletTransaction:
    """Write one transaction of a locked wallet; a settled one moves the balance at once."""
    amount = round_amount(credits * wallet.rate_amount if amount is None else amount, wallet.currency)
    now = timezone.now()
    row = WalletTransaction(
        wallet=wallet,
        transaction_type=transaction_type,
        status=status,
        transaction_status=kind,
        amount=amount,
        credit_amount=credits,
        priority=wallet.priority,
        settled_at=now if status == TransactionStatus.SETTLED else None,
        **fields,
    )
    row.save(force_insert=True)
    if status == TransactionStatus.SETTLED:
        apply_to_balance(wallet, amount=amount, credits=credits, inbound=transaction_type == TransactionType.INBOUND)
        if transaction_type == TransactionType.OUTBOUND and kind == TransactionKind.INVOICED:
            wallet.consumed_amount += amount
            wallet.consumed_credits += credits
            wallet.last_consumed_credit_at = now
        if save_wallet:
            wallet.save(update_fields=BALANCE_FIELDS)
    signals.wallet_transaction_created.send(sender=WalletTransaction, wallet_transaction_id=row.pk)
    return row


def announce(signal: Any, wallets: Iterable[Wallet]) -> None:
    for wallet in wallets:
        signal.send(sender=Wallet, wallet_id=wallet.pk)
