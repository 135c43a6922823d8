"""What the billing pipeline asks of the wallets, behind three functions:

- invoice_apply_prepaid_credits: at finalization, after coupons, taxes and credit-note credits
  (Lago's order), the customer's wallets pay what they may of the invoice;
- invoice_recredit_prepaid_credits: a voided invoice gives its consumed credits back;
- invoice_paid_settle_credits: a paid credit invoice settles its purchased credits;
- invoice_payment_failed_mark_credits: a failed payment marks its purchase failed.

Each runs inside the caller's transaction, with the wallet rows locked (select_for_update, in id
order), so two invoices finalizing at once for one customer never spend one credit twice. In the
billing run the consumption is computed from the chunk's read of the wallets and written by one
guarded statement that locks them and writes only if they still are as read (docs/scale.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, cast

from django.db import connections, router, transaction
from django.db.models import Case, F, Model, Value, When
from django.db.models.sql import InsertQuery
from django.utils import timezone

from billing_project.after_commit import delay_after_commit
from billing_project.money import round_amount

from ..models import Fee, Invoice, InvoiceStatus, InvoiceType
from . import ledger, signals
from .models import (
    TransactionKind,
    TransactionStatus,
    TransactionType,
    Wallet,
    WalletStatus,
    WalletTransaction,
)

ZERO = Decimal(0)
# Lago applies wallets to subscription (and progressive billing) invoices, never to one-off or
# credit invoices (lago-doc guide/wallet-and-prepaid-credits/overview.mdx, "Application scope").
CONSUMING_INVOICE_TYPES = (InvoiceType.SUBSCRIPTION, InvoiceType.PROGRESSIVE_BILLING)


def application_order(wallets: Iterable[Wallet]) -> list[Wallet]:
    """Priority 1 first; among equals the one that expires soonest, those without expiry after;
    then the oldest (lago-doc guide/wallet-and-prepaid-credits/overview.mdx)."""

    def key(wallet: Wallet) -> tuple[Any, ...]:
        expires = wallet.expiration_at
        return (wallet.priority, expires is None, expires.timestamp() if expires else 0, wallet.created_at, wallet.pk)

    return sorted(wallets, key=key)


_WHOLE_INVOICE = ("*", None)


def _fee_figures(invoice: Invoice) -> list[tuple[str, Any, Decimal, Decimal, Decimal]]:
    """(fee type, billable metric id, amount, coupons share, taxes) of the invoice's fees: those
    the billing run hands over in memory (prefetched as `fees`, not saved yet), else the saved ones."""
    cached = getattr(invoice, "_prefetched_objects_cache", {}).get("fees")
    if cached is not None:
        return [
            (
                fee.fee_type,
                fee.charge.billable_metric_id if fee.charge is not None else None,
                fee.amount,
                fee.precise_coupons_amount,
                fee.taxes_precise_amount,
            )
            for fee in cached
        ]
    return list(
        Fee.objects.filter(invoice_id=invoice.pk).values_list(
            "fee_type", "charge__billable_metric_id", "amount", "precise_coupons_amount", "taxes_precise_amount"
        )
    )


def _eligible(wallet: Wallet, fee_key: tuple[str, str | None]) -> bool:
    """Lago's applies_to: fee types and billable metrics. A wallet limited to metrics takes the
    charge fees of those metrics, plus the other fee types it names (never other charges)."""
    if fee_key == _WHOLE_INVOICE:
        return True
    fee_type, metric_id = fee_key
    if wallet.billable_metric_ids:
        if metric_id is not None and metric_id in wallet.billable_metric_ids:
            return True
        return bool(wallet.allowed_fee_types) and fee_type != "charge" and fee_type in wallet.allowed_fee_types
    if wallet.allowed_fee_types:
        return fee_type in wallet.allowed_fee_types
    return True


def invoice_apply_prepaid_credits(*, invoice: Invoice, snapshot: list[Wallet] | None = None) -> Decimal:
    """Consume the customer's wallets on `invoice` (unsaved or saved; its fees saved, its
    sub_total_including_taxes_amount and credit_notes_amount set). Returns the amount applied,
    rounded to the currency; writes one outbound `invoiced` transaction per wallet used.

    `snapshot`: the billing run's chunk read of its customers' active wallets (RunContext). The
    amounts are computed from it and written by ONE guarded statement (`_consume_guarded`) that
    locks the wallets and writes only if they still hold what the snapshot says; otherwise (or
    without a snapshot, or off PostgreSQL) the locked path: lock, read, compute, consume."""
    if invoice.invoice_type not in CONSUMING_INVOICE_TYPES:
        return ZERO
    currency = invoice.currency
    left = round_amount(invoice.sub_total_including_taxes_amount - invoice.credit_notes_amount, currency)
    if left <= 0:
        return ZERO
    now = timezone.now()
    rows: list[WalletTransaction] = []
    guarded = snapshot is not None and _guarded_available()
    if guarded:
        assert snapshot is not None
        # What the locked path would lock, as the chunk read it. Nothing to take there: nothing
        # taken (a wallet created or topped up since the chunk read waits for the next invoice,
        # as a customer without a wallet at the chunk read skips the wallets altogether).
        basis = _usable([w for w in snapshot if w.customer_id == invoice.customer_id], currency)
        if not basis:
            return ZERO
        rows = _transactions(invoice, basis, left=left, now=now)
        if not rows:
            return ZERO
        # False: the snapshot is stale (nothing written), the locked path reads the wallets again.
        guarded = _consume_guarded(rows, seen=basis, customer_id=invoice.customer_id, currency=currency, now=now)
    if not guarded:
        basis = ledger.lock_wallets(
            Wallet.objects.filter(
                customer_id=invoice.customer_id, status=WalletStatus.ACTIVE, currency=currency, balance__gt=0
            )
        )
        rows = _transactions(invoice, basis, left=left, now=now) if basis else []
        if rows:
            _consume(rows, now=now)
    if snapshot is not None:
        _snapshot_follow(snapshot, basis, rows, currency=currency)
    if not rows:
        return ZERO
    for row in rows:
        signals.wallet_transaction_created.send(sender=WalletTransaction, wallet_transaction_id=row.pk)
    customer_id = str(invoice.customer_id)
    # The ongoing balance (and the threshold rules) follow, after commit, off the billing path.
    from .tasks import refresh_ongoing_balances

    delay_after_commit(refresh_ongoing_balances, [customer_id])
    return round_amount(sum((row.amount for row in rows), ZERO), currency)


def _usable(wallets: Iterable[Wallet], currency: str) -> list[Wallet]:
    """The wallets the locked path locks: active, in the invoice's currency, with a balance."""
    return [w for w in wallets if w.status == WalletStatus.ACTIVE and w.currency == currency and w.balance > 0]


def _transactions(invoice: Invoice, wallets: list[Wallet], *, left: Decimal, now: Any) -> list[WalletTransaction]:
    """The outbound transactions that pay `left` of the invoice from `wallets` (their balances as
    read, not changed): priority order, each within its applies_to and its balance."""
    currency = invoice.currency
    # What each (fee type, billable metric) may still take: fee net of coupons, plus its taxes.
    # Wallets without applies_to take from the whole invoice: its fees are read only when a
    # wallet is limited (the common case costs no query).
    remaining: dict[tuple[str, str | None], Decimal] = {}
    if any(wallet.allowed_fee_types or wallet.billable_metric_ids for wallet in wallets):
        for fee_type, metric_id, amount, coupons, taxes in _fee_figures(invoice):
            key = (fee_type, str(metric_id) if metric_id else None)
            remaining[key] = remaining.get(key, ZERO) + amount - coupons + taxes
    else:
        remaining[_WHOLE_INVOICE] = left
    rows: list[WalletTransaction] = []
    for wallet in application_order(wallets):
        if left <= 0:
            break
        budget = min(wallet.balance, left)
        take = ZERO
        for key in remaining:
            if budget - take <= 0:
                break
            if remaining[key] <= 0 or not _eligible(wallet, key):
                continue
            part = min(remaining[key], budget - take)
            remaining[key] -= part
            take += part
        take = round_amount(take, currency)
        take = min(take, wallet.balance, left)
        if take <= 0:
            continue
        # The last of a wallet takes all its credits (no dust of rounding left behind).
        credits = wallet.credits_balance
        if take != wallet.balance:
            credits = min(wallet.to_credits(take), wallet.credits_balance)
        rows.append(
            WalletTransaction(
                wallet=wallet,
                invoice_id=invoice.pk,
                transaction_type=TransactionType.OUTBOUND,
                status=TransactionStatus.SETTLED,
                transaction_status=TransactionKind.INVOICED,
                amount=take,
                credit_amount=credits,
                priority=wallet.priority,
                settled_at=now,
            )
        )
        left -= take
    return rows


def _snapshot_follow(
    snapshot: list[Wallet], basis: list[Wallet], rows: list[WalletTransaction], *, currency: str
) -> None:
    """From now on the chunk's snapshot holds what its wallets hold inside this transaction (the
    next invoice of the customer in the chunk, in the same batch transaction or a later one,
    takes the guarded path again): `basis` are the wallets the consumption was computed from, as
    locked (or as checked by the guard); the snapshot's others in that currency had nothing to
    take then. Applied at once, not on commit: a batch of invoices shares one transaction
    (invoicing.runs.BATCH). If it rolls back, the snapshot is left ahead of the database; that is
    only slower, never wrong: the guard refuses a stale snapshot and the locked path reads again
    (and a rolled-back batch is billed again from a fresh RunContext anyway)."""
    taken = {row.wallet_id: (row.amount, row.credit_amount) for row in rows}
    after = {
        w.pk: (w.balance - taken.get(w.pk, (ZERO, ZERO))[0], w.credits_balance - taken.get(w.pk, (ZERO, ZERO))[1], w)
        for w in basis
    }
    by_pk = {w.pk: w for w in snapshot}

    def follow() -> None:
        for pk, (balance, credits_balance, fresh) in after.items():
            held = by_pk.get(pk)
            if held is None:  # a wallet created since the chunk read, found by the locked path
                snapshot.append(fresh)
                by_pk[pk] = held = fresh
            for name in _GUARDED_FIELDS[3:]:
                setattr(held, name, getattr(fresh, name))
            held.balance, held.credits_balance = balance, credits_balance
        for held in snapshot:
            if held.pk not in after and held.currency == currency:
                held.balance, held.credits_balance = ZERO, ZERO

    follow()


def _guarded_available() -> bool:
    return connections[router.db_for_write(WalletTransaction)].vendor == "postgresql"


# What the billing run's chunk reads of its customers' active wallets (RunContext.for_customers).
SNAPSHOT_FIELDS = (
    "id",
    "customer_id",
    "status",
    "currency",
    "balance",
    "credits_balance",
    "priority",
    "expiration_at",
    "created_at",
    "rate_amount",
    "allowed_fee_types",
    "billable_metric_ids",
)

# What the consumption's amounts depend on, compared with the snapshot (after the lock): the
# wallet and what the snapshot holds after its customer, status and currency (the lock's WHERE).
_GUARDED_FIELDS = ("id", *SNAPSHOT_FIELDS[4:])
_GUARDED_CASTS = ("uuid", "numeric", "numeric", "integer", "timestamptz", "timestamptz", "numeric", "jsonb", "jsonb")

# One statement: lock what the locked path would lock (FOR UPDATE waits for a concurrent
# consumption or top-up, then re-checks its WHERE against the newest row version), compare it
# with the snapshot the amounts were computed from, and only if every row matches (and no other
# wallet qualifies) insert the outbound transactions and take them from the balances.
# What both consumptions do with the transactions they inserted (`spent`): take them from the wallets.
_SPEND_SQL = """
UPDATE {wallet} AS w SET
    balance = w.balance - spent.amount,
    credits_balance = w.credits_balance - spent.credit_amount,
    ongoing_balance = w.ongoing_balance - spent.amount,
    credits_ongoing_balance = w.credits_ongoing_balance - spent.credit_amount,
    consumed_amount = w.consumed_amount + spent.amount,
    consumed_credits = w.consumed_credits + spent.credit_amount,
    last_consumed_credit_at = %s, last_balance_sync_at = %s, updated_at = %s
FROM spent WHERE w.id = spent.wallet_id
"""

_GUARDED_SQL = (
    """
WITH locked AS MATERIALIZED (
    SELECT {columns} FROM {wallet}
    WHERE customer_id = %s AND status = %s AND currency = %s AND balance > 0
    ORDER BY id FOR UPDATE
),
seen ({columns}) AS (VALUES {seen}),
held AS MATERIALIZED (
    SELECT (SELECT count(*) FROM locked) = %s
       AND (SELECT count(*) FROM locked JOIN seen ON {matches}) = %s AS ok
),
spent AS (
    INSERT INTO {transaction} ({insert_columns})
    SELECT * FROM (VALUES {values}) AS v WHERE (SELECT ok FROM held)
    RETURNING wallet_id, amount, credit_amount
)
"""
    + _SPEND_SQL
    + "RETURNING w.id\n"
)


def _consume_guarded(
    rows: list[WalletTransaction], *, seen: list[Wallet], customer_id: Any, currency: str, now: Any
) -> bool:
    """Write `rows` (computed from `seen`) in one statement if the customer's usable wallets,
    once locked, are exactly `seen` with the same balances and settings; otherwise write nothing
    and answer False (the caller takes the locked path, the locks already held). PostgreSQL."""
    connection = connections[router.db_for_write(WalletTransaction)]
    quote = connection.ops.quote_name
    fields = list(WalletTransaction._meta.concrete_fields)
    insert_params: list[Any] = []
    for row in rows:
        row._prepare_related_fields_for_save(operation_name="_consume_guarded")  # type: ignore[attr-defined]
        for field in fields:
            # As Django's insert compiler prepares a value (defaults, auto_now, adapters).
            insert_params.append(field.get_db_prep_save(field.pre_save(row, True), connection=connection))
    # Typed placeholders: the rows pass through a VALUES list (a SELECT), not an INSERT's own.
    row_sql = "(" + ", ".join(f"%s::{field.db_type(connection)}" for field in fields) + ")"
    seen_sql = "(" + ", ".join(f"%s::{kind}" for kind in _GUARDED_CASTS) + ")"
    columns = ", ".join(_GUARDED_FIELDS)
    matches = " AND ".join(f"seen.{name} IS NOT DISTINCT FROM locked.{name}" for name in _GUARDED_FIELDS)
    sql = _GUARDED_SQL.format(
        columns=columns,
        wallet=quote(Wallet._meta.db_table),
        seen=", ".join([seen_sql] * len(seen)),
        matches=matches,
        transaction=quote(WalletTransaction._meta.db_table),
        insert_columns=", ".join(quote(cast(str, field.column)) for field in fields),
        values=", ".join([row_sql] * len(rows)),
    )
    seen_params: list[Any] = []
    for wallet in seen:
        for name in _GUARDED_FIELDS:
            value = getattr(wallet, name)
            seen_params.append(json.dumps(value) if name in ("allowed_fee_types", "billable_metric_ids") else value)
    params = [
        customer_id,
        WalletStatus.ACTIVE.value,
        currency,
        *seen_params,
        len(seen),
        len(seen),
        *insert_params,
        now,
        now,
        now,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        updated = len(cursor.fetchall())
    if updated == 0:
        return False
    if updated != len(rows):
        raise AssertionError(f"guarded consumption updated {updated} wallets for {len(rows)} transactions")
    for row in rows:
        row._state.adding = False
        row._state.db = connection.alias
    return True


_CONSUME_SQL = (
    """
WITH spent AS ({insert} RETURNING wallet_id, amount, credit_amount)
"""
    + _SPEND_SQL
)


def _consume(rows: list[WalletTransaction], *, now: Any) -> None:
    """Write the outbound transactions and take their amounts from the (locked) wallets. On
    PostgreSQL one statement does both (an INSERT ... RETURNING feeding the UPDATE), so a
    wallet costs the billing run one query per invoice; elsewhere, two. Either way the
    balance CHECK refuses an overdraft."""
    connection = connections[router.db_for_write(WalletTransaction)]
    if connection.vendor == "postgresql":
        query = InsertQuery(WalletTransaction)
        fields = [f for f in WalletTransaction._meta.concrete_fields]
        query.insert_values(fields, cast("list[Model]", rows))
        ((insert_sql, insert_params),) = query.get_compiler(connection=connection).as_sql()
        sql = _CONSUME_SQL.format(insert=insert_sql, wallet=connection.ops.quote_name(Wallet._meta.db_table))
        with connection.cursor() as cursor:
            cursor.execute(sql, [*insert_params, now, now, now])
        for row in rows:
            row._state.adding = False
        return
    WalletTransaction.objects.bulk_create(rows)
    used = {row.wallet_id: row for row in rows}
    Wallet.objects.filter(pk__in=list(used)).update(
        balance=F("balance") - _by_wallet(used, "amount"),
        credits_balance=F("credits_balance") - _by_wallet(used, "credit_amount"),
        ongoing_balance=F("ongoing_balance") - _by_wallet(used, "amount"),
        credits_ongoing_balance=F("credits_ongoing_balance") - _by_wallet(used, "credit_amount"),
        consumed_amount=F("consumed_amount") + _by_wallet(used, "amount"),
        consumed_credits=F("consumed_credits") + _by_wallet(used, "credit_amount"),
        last_consumed_credit_at=now,
        last_balance_sync_at=now,
        updated_at=now,
    )


def _by_wallet(used: dict[Any, WalletTransaction], field: str) -> Case:
    return Case(
        *(When(pk=wallet_id, then=Value(getattr(row, field))) for wallet_id, row in used.items()),
        default=Value(ZERO),
    )


@transaction.atomic
def invoice_recredit_prepaid_credits(*, invoice: Invoice) -> Decimal:
    """A voided invoice gives back what it consumed: one inbound settled transaction per wallet
    (pointing at the voided invoice), unless the wallet was terminated since (its credits are
    gone, as Lago's WalletTransactions::RecreditService). A voided credit invoice fails its
    pending purchase. Returns the amount given back."""
    from .services import alerts_check_locked

    consumed = list(
        WalletTransaction.objects.filter(
            invoice_id=invoice.pk,
            transaction_type=TransactionType.OUTBOUND,
            transaction_status=TransactionKind.INVOICED,
            status=TransactionStatus.SETTLED,
        )
    )
    given_back = ZERO
    if consumed:
        wallets = {w.pk: w for w in ledger.lock_wallets(Wallet.objects.filter(pk__in={r.wallet_id for r in consumed}))}
        already = set(
            WalletTransaction.objects.filter(voided_invoice_id=invoice.pk).values_list("wallet_id", flat=True)
        )
        for row in consumed:
            wallet = wallets[row.wallet_id]
            if wallet.status != WalletStatus.ACTIVE or wallet.pk in already:
                continue
            # Lago's RecreditService grants the credits back with reset_consumed_credits: what
            # the voided invoice consumed no longer counts as consumed (never below zero).
            wallet.consumed_credits = max(ZERO, wallet.consumed_credits - row.credit_amount)
            wallet.consumed_amount = max(ZERO, wallet.consumed_amount - row.amount)
            ledger.transaction_record(
                wallet,
                transaction_type=TransactionType.INBOUND,
                status=TransactionStatus.SETTLED,
                kind=TransactionKind.GRANTED,
                credits=row.credit_amount,
                amount=row.amount,
                voided_invoice_id=invoice.pk,
                name="recredit",
            )
            given_back += row.amount
        alerts_check_locked(list(wallets.values()))
    now = timezone.now()
    for row in WalletTransaction.objects.filter(invoice_id=invoice.pk, status=TransactionStatus.PENDING):
        row.status = TransactionStatus.FAILED
        row.failed_at = now
        row.save(update_fields=["status", "failed_at", "updated_at"])
        signals.wallet_transaction_updated.send(sender=WalletTransaction, wallet_transaction_id=row.pk)
    return given_back


@transaction.atomic
def invoice_paid_settle_credits(*, invoice: Invoice) -> int:
    """A credit invoice is paid: its purchased credits settle and count in the balance, pending
    ones and those a failed payment marked failed (Lago's jobs/invoices/prepaid_credit_job.rb and
    Wallets::ApplyPaidCreditsService settle anything not settled). Idempotent: settled rows stay."""
    if invoice.invoice_type != InvoiceType.CREDIT or invoice.status == InvoiceStatus.VOIDED:
        return 0
    from .services import alerts_check_locked, credit_invoice_finalize_locked, threshold_check_locked

    if invoice.status == InvoiceStatus.OPEN:
        # Paid at last: the open credit invoice is numbered and finalized now (Lago's
        # jobs/invoices/prepaid_credit_job.rb: credits applied, then FinalizeOpenCreditService).
        credit_invoice_finalize_locked(invoice, actor="system:credit_invoice_paid", now=timezone.now(), paid=True)
    unsettled = (TransactionStatus.PENDING, TransactionStatus.FAILED)
    pending = list(
        WalletTransaction.objects.filter(
            invoice_id=invoice.pk, status__in=unsettled, transaction_type=TransactionType.INBOUND
        ).values_list("pk", "wallet_id")
    )
    if not pending:
        return 0
    wallets = {w.pk: w for w in ledger.lock_wallets(Wallet.objects.filter(pk__in={w for _, w in pending}))}
    settled = 0
    now = timezone.now()
    for row in WalletTransaction.objects.select_for_update().filter(pk__in=[pk for pk, _ in pending]):
        if row.status not in unsettled:
            continue
        wallet = wallets[row.wallet_id]
        row.status = TransactionStatus.SETTLED
        row.settled_at = now
        row.save(update_fields=["status", "settled_at", "updated_at"])
        ledger.apply_to_balance(wallet, amount=row.amount, credits=row.credit_amount, inbound=True)
        wallet.save(update_fields=ledger.BALANCE_FIELDS)
        signals.wallet_transaction_updated.send(sender=WalletTransaction, wallet_transaction_id=row.pk)
        threshold_check_locked(wallet, now=now)
        settled += 1
    alerts_check_locked(list(wallets.values()), now=now)
    return settled


def invoice_payment_failed_mark_credits(*, invoice: Invoice) -> int:
    """A credit invoice's payment failed: its pending purchase is marked failed (Lago's
    WalletTransactions::MarkAsFailedService, through jobs/invoices/prepaid_credit_job.rb); a
    later successful payment still settles it. Inside the caller's transaction."""
    if invoice.invoice_type != InvoiceType.CREDIT:
        return 0
    now = timezone.now()
    marked = 0
    for row in WalletTransaction.objects.select_for_update().filter(
        invoice_id=invoice.pk, status=TransactionStatus.PENDING, transaction_type=TransactionType.INBOUND
    ):
        row.status = TransactionStatus.FAILED
        row.failed_at = now
        row.save(update_fields=["status", "failed_at", "updated_at"])
        signals.wallet_transaction_updated.send(sender=WalletTransaction, wallet_transaction_id=row.pk)
        marked += 1
    return marked
