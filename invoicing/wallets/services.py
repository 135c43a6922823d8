"""Every state change of a wallet: created (with its first top-up), updated, terminated (by hand
or on expiry), topped up (paid credits through a credit invoice, granted credits at once),
credits voided, recurring rules fired, ongoing balance refreshed.

One transaction each, the wallet row locked; signals (signals.py) are sent inside it. Amounts in
the wallet's currency are rounded to its minor unit; credits keep five decimals (as Lago).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta  # type: ignore[import-untyped]
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from billing_project.after_commit import delay_after_commit, send_after_commit
from billing_project.metadata import metadata_without
from billing_project.money import is_currency, round_amount
from customers.models import Customer, Organization
from metrics.models import BillableMetric

from ..errors import InvoicingError, NotFoundError
from ..models import Fee, FeeType, Invoice, InvoiceEvent, InvoiceStatus, InvoiceType
from . import ledger, signals
from .models import (
    LOWEST_PRIORITY,
    MAXIMUM_WALLETS_PER_CUSTOMER,
    RecurringTransactionRule,
    RuleInterval,
    RuleMethod,
    RuleTrigger,
    TransactionKind,
    TransactionSource,
    TransactionStatus,
    TransactionType,
    Wallet,
    WalletStatus,
    WalletTransaction,
)

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
FEE_TYPES = ("charge", "subscription", "commitment")
_UNSET: Any = object()


# --------------------------------------------------------------------------------------------
# Parsing (the API and the admin hand raw values; errors use Lago's codes)


def credits_value(value: Any, field: str, code: str) -> Decimal:
    """A non-negative number of credits; None is zero."""
    if value is None or value == "":
        return ZERO
    if isinstance(value, bool):
        raise InvoicingError({field: [code]})
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvoicingError({field: [code]}) from None
    if not number.is_finite() or number < 0 or number > Decimal("1e15"):
        raise InvoicingError({field: [code]})
    return number.quantize(Decimal("0.00001"))


def _datetime(value: Any, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise InvoicingError({field: ["invalid_date"]}) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo("UTC"))
    return parsed


def _cents_limit(value: Any, field: str, currency: str) -> Decimal | None:
    from billing_project.money import from_cents

    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvoicingError({field: ["value_is_invalid"]})
    try:
        cents = int(value)
    except ValueError:
        raise InvoicingError({field: ["value_is_invalid"]}) from None
    if cents <= 0:
        raise InvoicingError({field: ["value_is_invalid"]})
    return from_cents(cents, currency)


def _applies_to(applies_to: Any) -> tuple[list[str], list[str]]:
    """(fee types, billable metric ids) of Lago's `applies_to`."""
    if applies_to in (None, {}):
        return [], []
    if not isinstance(applies_to, Mapping):
        raise InvoicingError({"applies_to": ["invalid_limitations"]})
    fee_types = applies_to.get("fee_types") or []
    codes = applies_to.get("billable_metric_codes") or []
    if not isinstance(fee_types, list) or any(t not in FEE_TYPES for t in fee_types):
        raise InvoicingError({"applies_to": ["invalid_limitations"]})
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise InvoicingError({"applies_to": ["invalid_limitations"]})
    metric_ids = {m.code: str(m.pk) for m in BillableMetric.live.filter(code__in=codes)}
    if set(codes) - metric_ids.keys():
        raise InvoicingError({"applies_to": ["invalid_limitations"]})
    return sorted(set(fee_types)), [metric_ids[c] for c in dict.fromkeys(codes)]


def _priority(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvoicingError({"priority": ["value_is_out_of_range"]})
    try:
        priority = int(value)
    except ValueError:
        raise InvoicingError({"priority": ["value_is_out_of_range"]}) from None
    if not 1 <= priority <= LOWEST_PRIORITY:
        raise InvoicingError({"priority": ["value_is_out_of_range"]})
    return priority


def _rate(value: Any) -> Decimal:
    try:
        rate = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvoicingError({"rate_amount": ["value_is_out_of_range"]}) from None
    if not rate.is_finite() or rate <= 0 or rate >= Decimal("1e20"):
        raise InvoicingError({"rate_amount": ["value_is_out_of_range"]})
    return rate


def default_code(name: str, wallet_id: uuid.UUID) -> str:
    """Unique without a clock: a slug of the name and a piece of the wallet's random id, so two
    wallets created in one second never clash."""
    return f"{slugify(name).replace('-', '_') or 'wallet'}_{wallet_id.hex[:12]}"


# --------------------------------------------------------------------------------------------
# Recurring rules


@dataclass
class RuleInput:
    lago_id: str | None
    fields: dict[str, Any]


def _rule_input(raw: Any, wallet_currency: str) -> RuleInput:
    if not isinstance(raw, Mapping):
        raise InvoicingError({"recurring_transaction_rules": ["invalid_recurring_rule"]})
    trigger = raw.get("trigger") or RuleTrigger.INTERVAL
    method = raw.get("method") or RuleMethod.FIXED
    interval = raw.get("interval") or ""
    invalid = InvoicingError({"recurring_transaction_rules": ["invalid_recurring_rule"]})
    if trigger not in RuleTrigger.values or method not in RuleMethod.values:
        raise invalid
    if trigger == RuleTrigger.INTERVAL and interval not in RuleInterval.values:
        raise invalid
    fields: dict[str, Any] = {
        "trigger": trigger,
        "method": method,
        "interval": interval if trigger == RuleTrigger.INTERVAL else "",
        "paid_credits": credits_value(raw.get("paid_credits"), "recurring_transaction_rules", "invalid_recurring_rule"),
        "granted_credits": credits_value(
            raw.get("granted_credits"), "recurring_transaction_rules", "invalid_recurring_rule"
        ),
        "threshold_credits": credits_value(
            raw.get("threshold_credits"), "recurring_transaction_rules", "invalid_recurring_rule"
        ),
        "started_at": _datetime(raw.get("started_at"), "recurring_transaction_rules"),
        "expiration_at": _datetime(raw.get("expiration_at"), "recurring_transaction_rules"),
        "transaction_name": str(raw.get("transaction_name") or "")[:255],
        "transaction_metadata": list(raw.get("transaction_metadata") or []),
        "invoice_requires_successful_payment": bool(raw.get("invoice_requires_successful_payment") or False),
        "ignore_paid_top_up_limits": bool(raw.get("ignore_paid_top_up_limits") or False),
    }
    if method == RuleMethod.TARGET:
        if raw.get("target_ongoing_balance") in (None, ""):
            raise invalid
        fields["target_ongoing_balance"] = credits_value(
            raw.get("target_ongoing_balance"), "recurring_transaction_rules", "invalid_recurring_rule"
        )
    return RuleInput(lago_id=raw.get("lago_id"), fields=fields)


def _rules_set(wallet: Wallet, raw_rules: Any, *, now: datetime) -> None:
    """Lago: one rule per wallet; rules not named again are terminated."""
    if not isinstance(raw_rules, list):
        raise InvoicingError({"recurring_transaction_rules": ["invalid_recurring_rule"]})
    if len(raw_rules) > 1:
        raise InvoicingError({"recurring_transaction_rules": ["invalid_number_of_recurring_rules"]})
    inputs = [_rule_input(raw, wallet.currency) for raw in raw_rules]
    kept: set[Any] = set()
    for rule_input in inputs:
        rule = None
        rule_id = _uuid(rule_input.lago_id) if rule_input.lago_id else None
        if rule_id is not None:
            rule = wallet.recurring_transaction_rules.filter(pk=rule_id).first()
        if rule is None:
            rule = RecurringTransactionRule(wallet=wallet, started_at=rule_input.fields.get("started_at") or now)
        for name, value in rule_input.fields.items():
            if name == "started_at" and value is None:
                continue
            setattr(rule, name, value)
        rule.save()
        kept.add(rule.pk)
    wallet.recurring_transaction_rules.filter(status=WalletStatus.ACTIVE).exclude(pk__in=kept).update(
        status=WalletStatus.TERMINATED, terminated_at=now, updated_at=now
    )


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


# --------------------------------------------------------------------------------------------
# Wallets


def _check_metadata(metadata: Any) -> dict[str, str | None]:
    # Not billing_project.metadata.metadata_clean: wallets answer `invalid_type` and take any keys
    # and values (stringified) as they always have; moving them would change the answers.
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvoicingError({"metadata": ["invalid_type"]})
    return {str(k): (None if v is None else str(v)) for k, v in metadata.items()}


@transaction.atomic
def wallet_create(
    *,
    customer: Customer | None,
    rate_amount: Any,
    actor: str,
    name: str = "",
    code: str | None = None,
    currency: str | None = None,
    priority: Any = None,
    paid_credits: Any = None,
    granted_credits: Any = None,
    expiration_at: Any = None,
    applies_to: Any = None,
    invoice_requires_successful_payment: bool | None = None,
    paid_top_up_min_amount_cents: Any = None,
    paid_top_up_max_amount_cents: Any = None,
    ignore_paid_top_up_limits_on_creation: bool = False,
    recurring_transaction_rules: Any = None,
    transaction_metadata: Any = None,
    transaction_name: str | None = None,
    metadata: Any = None,
    now: datetime | None = None,
) -> Wallet:
    """Lago's POST /wallets: an active wallet (at most 6 per customer) and its first top-up."""
    now = now or timezone.now()
    if customer is None:
        raise InvoicingError({"customer": ["customer_not_found"]})
    # The customer's row serializes wallet creations (the limit of six, the currency).
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    errors: dict[str, list[str]] = {}
    paid = granted = ZERO
    try:
        paid = credits_value(paid_credits, "paid_credits", "invalid_paid_credits")
    except InvoicingError as error:
        errors.update(error.details or {})
    try:
        granted = credits_value(granted_credits, "granted_credits", "invalid_granted_credits")
    except InvoicingError as error:
        errors.update(error.details or {})
    expires = None
    try:
        expires = _datetime(expiration_at, "expiration_at")
        if expires is not None and expires <= now:
            errors["expiration_at"] = ["invalid_date"]
    except InvoicingError as error:
        errors.update(error.details or {})
    if Wallet.objects.filter(customer=customer, status=WalletStatus.ACTIVE).count() >= MAXIMUM_WALLETS_PER_CUSTOMER:
        errors["customer"] = ["wallet_limit_reached"]
    if errors:
        raise InvoicingError(errors)
    wallet_currency = (currency or customer.currency or "").upper()
    if not wallet_currency:
        raise InvoicingError({"currency": ["value_is_mandatory"]})
    if not is_currency(wallet_currency):
        raise InvoicingError({"currency": ["value_is_invalid"]})
    if not customer.currency:
        Customer.objects.filter(pk=customer.pk).update(currency=wallet_currency, updated_at=now)
        customer.currency = wallet_currency
    fee_types, metric_ids = _applies_to(applies_to)
    wallet_id = uuid.uuid4()
    currency_ = wallet_currency
    wallet = Wallet(
        id=wallet_id,
        customer=customer,
        name=str(name or "")[:255],
        code=str(code or default_code(name or "", wallet_id))[:255],
        currency=wallet_currency,
        rate_amount=_rate(rate_amount),
        priority=_priority(priority) if priority is not None else LOWEST_PRIORITY,
        expiration_at=expires,
        invoice_requires_successful_payment=bool(invoice_requires_successful_payment or False),
        paid_top_up_min_amount=_cents_limit(paid_top_up_min_amount_cents, "paid_top_up_min_amount_cents", currency_),
        paid_top_up_max_amount=_cents_limit(paid_top_up_max_amount_cents, "paid_top_up_max_amount_cents", currency_),
        allowed_fee_types=fee_types,
        billable_metric_ids=metric_ids,
        metadata=_check_metadata(metadata),
    )
    _check_limits_order(wallet)
    if Wallet.objects.filter(customer=customer, code=wallet.code).exists():
        raise InvoicingError({"code": ["value_already_exist"]})
    wallet.save(force_insert=True)
    if recurring_transaction_rules:
        _rules_set(wallet, recurring_transaction_rules, now=now)
    signals.wallet_created.send(sender=Wallet, wallet_id=wallet.pk)
    if paid or granted:
        _top_up(
            wallet,
            paid=paid,
            granted=granted,
            source=TransactionSource.MANUAL,
            name=transaction_name or "",
            metadata=transaction_metadata,
            ignore_limits=ignore_paid_top_up_limits_on_creation,
            requires_payment=None,
            actor=actor,
            now=now,
        )
    return wallet


def _check_limits_order(wallet: Wallet) -> None:
    low, high = wallet.paid_top_up_min_amount, wallet.paid_top_up_max_amount
    if low is not None and high is not None and high < low:
        raise InvoicingError({"paid_top_up_max_amount_cents": ["must_be_greater_than_or_equal_min"]})


@transaction.atomic
def wallet_update(
    *,
    wallet: Wallet,
    actor: str,
    name: Any = _UNSET,
    priority: Any = _UNSET,
    expiration_at: Any = _UNSET,
    applies_to: Any = _UNSET,
    invoice_requires_successful_payment: Any = _UNSET,
    paid_top_up_min_amount_cents: Any = _UNSET,
    paid_top_up_max_amount_cents: Any = _UNSET,
    recurring_transaction_rules: Any = _UNSET,
    metadata: Any = _UNSET,
    now: datetime | None = None,
) -> Wallet:
    """Lago's PUT /wallets/{id}: what a wallet's terms may become; balances never change here."""
    now = now or timezone.now()
    wallet = ledger.lock_wallet(wallet)
    if wallet.status != WalletStatus.ACTIVE:
        raise InvoicingError({"wallet": ["wallet_is_terminated"]})
    if name is not _UNSET and name is not None:
        wallet.name = str(name)[:255]
    if priority is not _UNSET and priority is not None:
        wallet.priority = _priority(priority)
    if expiration_at is not _UNSET:
        expires = _datetime(expiration_at, "expiration_at")
        if expires is not None and expires <= now:
            raise InvoicingError({"expiration_at": ["invalid_date"]})
        wallet.expiration_at = expires
    if applies_to is not _UNSET and applies_to is not None:
        wallet.allowed_fee_types, wallet.billable_metric_ids = _applies_to(applies_to)
    if invoice_requires_successful_payment is not _UNSET and invoice_requires_successful_payment is not None:
        wallet.invoice_requires_successful_payment = bool(invoice_requires_successful_payment)
    if paid_top_up_min_amount_cents is not _UNSET:
        wallet.paid_top_up_min_amount = _cents_limit(
            paid_top_up_min_amount_cents, "paid_top_up_min_amount_cents", wallet.currency
        )
    if paid_top_up_max_amount_cents is not _UNSET:
        wallet.paid_top_up_max_amount = _cents_limit(
            paid_top_up_max_amount_cents, "paid_top_up_max_amount_cents", wallet.currency
        )
    _check_limits_order(wallet)
    if metadata is not _UNSET and metadata is not None:
        wallet.metadata = _check_metadata(metadata)
    wallet.save()
    if recurring_transaction_rules is not _UNSET and recurring_transaction_rules is not None:
        _rules_set(wallet, recurring_transaction_rules, now=now)
    signals.wallet_updated.send(sender=Wallet, wallet_id=wallet.pk)
    return wallet


@transaction.atomic
def wallet_metadata_set(*, wallet: Wallet, metadata: Any, merge: bool, actor: str) -> Wallet:
    """Lago's wallet metadata routes: replace (POST), merge (PATCH)."""
    wallet = ledger.lock_wallet(wallet)
    cleaned = _check_metadata(metadata)
    wallet.metadata = {**(wallet.metadata or {}), **cleaned} if merge else cleaned
    wallet.save(update_fields=["metadata", "updated_at"])
    signals.wallet_updated.send(sender=Wallet, wallet_id=wallet.pk)
    return wallet


@transaction.atomic
def wallet_metadata_delete(*, wallet: Wallet, actor: str, key: str | None = None) -> Wallet:
    wallet = ledger.lock_wallet(wallet)
    wallet.metadata = {} if key is None else metadata_without(wallet.metadata, key)
    wallet.save(update_fields=["metadata", "updated_at"])
    signals.wallet_updated.send(sender=Wallet, wallet_id=wallet.pk)
    return wallet


@transaction.atomic
def wallet_terminate(*, wallet: Wallet, actor: str, now: datetime | None = None, expired: bool = False) -> Wallet:
    """Lago's DELETE /wallets/{id} (and expiry): the remaining credits are voided, recorded as an
    outbound `voided` transaction; its rules end. Terminating twice changes nothing.

    Its alerts, as Lago's Wallets::TerminateService leaves them: kept (listed, editable, their
    triggered alerts kept) and never evaluated again (the void of the remaining credits announces
    no crossing; usage_monitoring/process_wallet_alerts runs only for active wallets). The
    customer's other active wallets get their ongoing balance refreshed after commit (Lago's
    `flag_wallets_for_refresh`): the usage the terminated wallet covered falls to them, and that
    refresh evaluates their alerts."""
    now = now or timezone.now()
    wallet = ledger.lock_wallet(wallet)
    if wallet.status == WalletStatus.TERMINATED:
        return wallet
    if wallet.credits_balance > 0:
        ledger.transaction_record(
            wallet,
            transaction_type=TransactionType.OUTBOUND,
            status=TransactionStatus.SETTLED,
            kind=TransactionKind.VOIDED,
            credits=wallet.credits_balance,
            amount=wallet.balance,
            name="expired" if expired else "terminated",
            save_wallet=False,
        )
    wallet.status = WalletStatus.TERMINATED
    wallet.terminated_at = now
    wallet.save()
    wallet.recurring_transaction_rules.filter(status=WalletStatus.ACTIVE).update(
        status=WalletStatus.TERMINATED, terminated_at=now, updated_at=now
    )
    signals.wallet_terminated.send(sender=Wallet, wallet_id=wallet.pk)
    if Wallet.objects.filter(customer_id=wallet.customer_id, status=WalletStatus.ACTIVE).exists():
        from .tasks import refresh_ongoing_balances

        delay_after_commit(refresh_ongoing_balances, [str(wallet.customer_id)])
    return wallet


def wallets_expire(*, now: datetime | None = None, actor: str = "system:wallet_expiry") -> int:
    """Periodic: active wallets past their expiration_at are terminated, credits recorded expired."""
    now = now or timezone.now()
    count = 0
    due = Wallet.objects.filter(status=WalletStatus.ACTIVE, expiration_at__lte=now).values_list("pk", flat=True)
    for wallet_id in list(due):
        wallet_terminate(wallet=Wallet(pk=wallet_id), actor=actor, now=now, expired=True)
        count += 1
    RecurringTransactionRule.objects.filter(status=WalletStatus.ACTIVE, expiration_at__lte=now).update(
        status=WalletStatus.TERMINATED, terminated_at=now, updated_at=now
    )
    return count


# --------------------------------------------------------------------------------------------
# Transactions


def _check_paid_limits(wallet: Wallet, paid: Decimal, ignore_limits: bool) -> None:
    if paid <= 0 or ignore_limits:
        return
    amount = round_amount(paid * wallet.rate_amount, wallet.currency)
    if wallet.paid_top_up_min_amount is not None and amount < wallet.paid_top_up_min_amount:
        raise InvoicingError({"paid_credits": ["amount_below_minimum"]})
    if wallet.paid_top_up_max_amount is not None and amount > wallet.paid_top_up_max_amount:
        raise InvoicingError({"paid_credits": ["amount_above_maximum"]})


def _top_up(
    wallet: Wallet,
    *,
    paid: Decimal,
    granted: Decimal,
    source: str,
    name: str,
    metadata: Any,
    ignore_limits: bool,
    requires_payment: bool | None,
    actor: str,
    now: datetime,
    voided: Decimal = ZERO,
    rule: RecurringTransactionRule | None = None,
    rule_firing: str | None = None,
) -> list[WalletTransaction]:
    """Inside the caller's transaction, the wallet locked: paid (pending, with a credit invoice),
    granted (settled at once) and voided (removed at once) credits, in Lago's order."""
    if wallet.status != WalletStatus.ACTIVE:
        raise InvoicingError({"wallet": ["wallet_is_terminated"]})
    _check_paid_limits(wallet, paid, ignore_limits)
    if voided > wallet.credits_balance:
        raise InvoicingError({"voided_credits": ["insufficient_credits"]})
    requires = wallet.invoice_requires_successful_payment if requires_payment is None else requires_payment
    common: dict[str, Any] = {
        "source": source,
        "name": (name or "")[:255],
        "metadata": list(metadata or []),
        "invoice_requires_successful_payment": requires,
        "recurring_rule": rule,
        "rule_firing": rule_firing,
    }
    created: list[WalletTransaction] = []
    if paid > 0:
        row = ledger.transaction_record(
            wallet,
            transaction_type=TransactionType.INBOUND,
            status=TransactionStatus.PENDING,
            kind=TransactionKind.PURCHASED,
            credits=paid,
            **common,
        )
        row.invoice = _credit_invoice(wallet, row, actor=actor, now=now)
        row.save(update_fields=["invoice", "updated_at"])
        created.append(row)
        common["rule_firing"] = f"{rule_firing}:granted" if rule_firing else None
    if granted > 0:
        created.append(
            ledger.transaction_record(
                wallet,
                transaction_type=TransactionType.INBOUND,
                status=TransactionStatus.SETTLED,
                kind=TransactionKind.GRANTED,
                credits=granted,
                **common,
            )
        )
    if voided > 0:
        common["rule_firing"] = None
        created.append(
            ledger.transaction_record(
                wallet,
                transaction_type=TransactionType.OUTBOUND,
                status=TransactionStatus.SETTLED,
                kind=TransactionKind.VOIDED,
                credits=voided,
                amount=wallet.balance if voided == wallet.credits_balance else None,
                **common,
            )
        )
    if created:
        _rearm_thresholds(wallet)
        alerts_check_locked([wallet], now=now)
    return created


def alerts_check_locked(wallets: Sequence[Wallet], *, now: datetime | None = None) -> None:
    """The wallets' balances moved (the rows locked): their wallet alerts are evaluated now, in
    this transaction (invoicing.monitoring.evaluation; one query when they have none)."""
    from ..monitoring.evaluation import wallet_alerts_evaluate_locked

    wallet_alerts_evaluate_locked(wallets, now=now)


@transaction.atomic
def wallet_transactions_create(
    *,
    wallet: Wallet,
    actor: str,
    paid_credits: Any = None,
    granted_credits: Any = None,
    voided_credits: Any = None,
    name: str | None = None,
    metadata: Any = None,
    invoice_requires_successful_payment: bool | None = None,
    ignore_paid_top_up_limits: bool = False,
    now: datetime | None = None,
) -> list[WalletTransaction]:
    """Lago's POST /wallet_transactions."""
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}
    amounts: dict[str, Decimal] = {}
    for field, value, code in (
        ("paid_credits", paid_credits, "invalid_paid_credits"),
        ("granted_credits", granted_credits, "invalid_granted_credits"),
        ("voided_credits", voided_credits, "invalid_voided_credits"),
    ):
        try:
            amounts[field] = credits_value(value, field, code)
        except InvoicingError as error:
            errors.update(error.details or {})
    if errors:
        raise InvoicingError(errors)
    wallet = ledger.lock_wallet(wallet)
    return _top_up(
        wallet,
        paid=amounts["paid_credits"],
        granted=amounts["granted_credits"],
        voided=amounts["voided_credits"],
        source=TransactionSource.MANUAL,
        name=name or "",
        metadata=metadata,
        ignore_limits=ignore_paid_top_up_limits,
        requires_payment=invoice_requires_successful_payment,
        actor=actor,
        now=now,
    )


def _credit_invoice(wallet: Wallet, row: WalletTransaction, *, actor: str, now: datetime) -> Invoice:
    """The invoice of purchased credits (Lago: invoice_type credit, untaxed), collected after
    commit. Finalized at once, unless the top-up requires a successful payment: then it stays
    `open` (no number yet) until paid (Lago's Invoices::PaidCreditService). Either way the
    credits settle when it is paid (consumption.invoice_paid_settle_credits)."""
    from .. import numbering
    from ..signals import invoice_opened

    organization = Organization.current()
    customer = wallet.customer
    issuing_date = _local_today(customer, organization, now)
    net_term = customer.applicable_net_payment_term(organization)
    amount = row.amount
    invoice = Invoice(
        customer=customer,
        invoice_type=InvoiceType.CREDIT,
        status=InvoiceStatus.OPEN,
        currency=wallet.currency,
        issuing_date=issuing_date,
        payment_due_date=issuing_date + timedelta(days=net_term),
        net_payment_term=net_term,
        fees_amount=amount,
        sub_total_excluding_taxes_amount=amount,
        sub_total_including_taxes_amount=amount,
        total_amount=amount,
        number=numbering.draft_number(organization),
    )
    invoice.save(force_insert=True)
    Fee.objects.create(
        invoice=invoice,
        fee_type=FeeType.CREDIT,
        currency=wallet.currency,
        units=row.credit_amount,
        unit_amount=wallet.rate_amount,
        amount=amount,
        precise_amount=row.credit_amount * wallet.rate_amount,
        invoice_display_name=wallet.name or "Prepaid credits",
        from_datetime=now,
        to_datetime=now,
    )
    payload = {"wallet_transaction_id": str(row.pk), "total_amount": str(amount)}
    InvoiceEvent.objects.create(invoice=invoice, kind="created", actor=actor, payload=payload)
    if row.invoice_requires_successful_payment:
        send_after_commit(invoice_opened, sender=Invoice, invoice_id=invoice.pk)
    else:
        credit_invoice_finalize_locked(invoice, actor=actor, now=now, paid=False, organization=organization)
    return invoice


def _local_today(customer: Customer, organization: Organization, now: datetime) -> Any:
    tz = customer.timezone or organization.timezone or "UTC"
    return now.astimezone(ZoneInfo(tz)).date()


def credit_invoice_finalize_locked(
    invoice: Invoice, *, actor: str, now: datetime, paid: bool, organization: Organization | None = None
) -> None:
    """Inside the caller's transaction: number and finalize a credit invoice, announced as
    invoice.paid_credit_added, its PDF rendered after commit. At its creation (`paid` false) it
    is then collected; an open one finalized because it was `paid` is issued and due today (Lago's
    Invoices::FinalizeOpenCreditService)."""
    from .. import numbering
    from ..services import customer_snapshot
    from ..signals import invoice_finalized, invoice_paid_credit_added_in_tx
    from ..tasks import render_invoice_pdf

    organization = organization or Organization.current()
    if paid:
        invoice.issuing_date = invoice.payment_due_date = _local_today(invoice.customer, organization, now)
    invoice.status = InvoiceStatus.FINALIZED
    invoice.finalized_at = now
    numbering.invoice_number_assign(invoice=invoice, organization=organization, issuing_date=invoice.issuing_date)
    invoice.customer_snapshot = customer_snapshot(invoice.customer, organization)
    invoice.save(
        update_fields=[
            "status",
            "finalized_at",
            "number",
            "sequential_id",
            "organization_sequential_id",
            "customer_snapshot",
            "issuing_date",
            "payment_due_date",
            "updated_at",
        ]
    )
    InvoiceEvent.objects.create(
        invoice=invoice,
        kind="finalized",
        actor=actor,
        payload={"number": invoice.number, "total_amount": str(invoice.total_amount), "on_payment": paid},
    )
    invoice_paid_credit_added_in_tx.send(sender=Invoice, invoice_id=invoice.pk)
    if not paid:
        send_after_commit(invoice_finalized, sender=Invoice, invoice_id=invoice.pk)
    delay_after_commit(render_invoice_pdf, str(invoice.pk))


# --------------------------------------------------------------------------------------------
# Recurring rules: interval (once per interval) and threshold (once per crossing)

_STEPS = {
    RuleInterval.WEEKLY: relativedelta(weeks=1),
    RuleInterval.MONTHLY: relativedelta(months=1),
    RuleInterval.QUARTERLY: relativedelta(months=3),
    RuleInterval.SEMIANNUAL: relativedelta(months=6),
    RuleInterval.YEARLY: relativedelta(years=1),
}


def interval_boundary(rule: RecurringTransactionRule, now: datetime) -> datetime | None:
    """The last interval boundary after the rule's start and at or before `now` (None before the
    first). Boundaries count from started_at: monthly on the 31st falls on each month's last day."""
    start = rule.started_at or rule.created_at
    step = _STEPS[RuleInterval(rule.interval)]
    if now < start + step:
        return None
    count = 1
    while start + step * (count + 1) <= now:
        count += 1
    return start + step * count


def _rule_credits(rule: RecurringTransactionRule, wallet: Wallet) -> tuple[Decimal, Decimal]:
    if rule.method == RuleMethod.TARGET:
        target = rule.target_ongoing_balance or ZERO
        gap = target - wallet.credits_ongoing_balance
        return (max(gap, ZERO), ZERO)
    return rule.paid_credits, rule.granted_credits


def _fire(rule: RecurringTransactionRule, wallet: Wallet, *, firing: str, source: str, now: datetime) -> bool:
    paid, granted = _rule_credits(rule, wallet)
    if paid <= 0 and granted <= 0:
        return False
    try:
        with transaction.atomic():
            _top_up(
                wallet,
                paid=paid,
                granted=granted,
                source=source,
                name=rule.transaction_name,
                metadata=rule.transaction_metadata,
                ignore_limits=rule.ignore_paid_top_up_limits or rule.method == RuleMethod.TARGET,
                requires_payment=rule.invoice_requires_successful_payment,
                actor=f"system:{source}_top_up",
                now=now,
                rule=rule,
                rule_firing=firing,
            )
    except IntegrityError:
        # This firing topped up already (a retried task): the unique constraint said so.
        return False
    return True


@transaction.atomic
def wallet_interval_top_up(*, rule_id: Any, now: datetime | None = None) -> bool:
    """Top up for the rule's current interval, once (the firing key is the boundary)."""
    now = now or timezone.now()
    rule = RecurringTransactionRule.objects.filter(pk=rule_id, status=WalletStatus.ACTIVE).first()
    if rule is None or rule.trigger != RuleTrigger.INTERVAL:
        return False
    wallet = ledger.lock_wallet(rule.wallet_id)
    if wallet.status != WalletStatus.ACTIVE:
        return False
    boundary = interval_boundary(rule, now)
    if boundary is None:
        return False
    firing = f"interval:{boundary.isoformat()}"
    if WalletTransaction.objects.filter(recurring_rule=rule, rule_firing=firing).exists():
        return False
    return _fire(rule, wallet, firing=firing, source=TransactionSource.INTERVAL, now=now)


def recurring_interval_top_ups(*, now: datetime | None = None) -> int:
    """Periodic: every active interval rule that reached a new boundary tops up once."""
    now = now or timezone.now()
    rules = RecurringTransactionRule.objects.filter(
        status=WalletStatus.ACTIVE, trigger=RuleTrigger.INTERVAL, wallet__status=WalletStatus.ACTIVE
    ).values_list("pk", flat=True)
    fired = 0
    for rule_id in list(rules):
        try:
            fired += wallet_interval_top_up(rule_id=rule_id, now=now)
        except Exception:
            logger.exception("wallets: interval top-up of rule %s failed", rule_id)
    return fired


def _rearm_thresholds(wallet: Wallet) -> None:
    """A threshold rule is armed again once the ongoing balance is back above its threshold."""
    RecurringTransactionRule.objects.filter(
        wallet=wallet,
        trigger=RuleTrigger.THRESHOLD,
        threshold_armed=False,
        threshold_credits__lt=wallet.credits_ongoing_balance,
    ).update(threshold_armed=True)


def threshold_check_locked(wallet: Wallet, *, now: datetime | None = None) -> bool:
    """Inside the caller's transaction, the wallet locked: fire its threshold rule when the
    ongoing balance fell to the threshold, once per crossing."""
    now = now or timezone.now()
    rule = (
        RecurringTransactionRule.objects.select_for_update()
        .filter(wallet=wallet, status=WalletStatus.ACTIVE, trigger=RuleTrigger.THRESHOLD)
        .first()
    )
    if rule is None or wallet.status != WalletStatus.ACTIVE:
        return False
    if wallet.credits_ongoing_balance > rule.threshold_credits:
        if not rule.threshold_armed:
            rule.threshold_armed = True
            rule.save(update_fields=["threshold_armed", "updated_at"])
        return False
    if not rule.threshold_armed:
        return False
    rule.threshold_crossings += 1
    rule.threshold_armed = False
    rule.save(update_fields=["threshold_crossings", "threshold_armed", "updated_at"])
    return _fire(
        rule, wallet, firing=f"threshold:{rule.threshold_crossings}", source=TransactionSource.THRESHOLD, now=now
    )


@transaction.atomic
def wallet_threshold_check(*, wallet_id: Any, now: datetime | None = None) -> bool:
    wallet = ledger.lock_wallet(wallet_id)
    return threshold_check_locked(wallet, now=now)


# --------------------------------------------------------------------------------------------
# Ongoing balance


def wallets_ongoing_balance_refresh(
    *,
    customer_ids: Sequence[Any] | None = None,
    now: datetime | None = None,
    fresher_than: timedelta | None = None,
) -> int:
    """Balance minus the usage not invoiced yet (current usage with taxes, and drafts), spread
    over the customer's wallets in their application order; one usage computation per customer
    (its queries depend on the charges, never on the number of events); then threshold rules.
    With `fresher_than`, customers whose wallets were all refreshed that recently are skipped."""
    from django.db.models import Q

    from .selectors import customer_ongoing_usage

    now = now or timezone.now()
    wallets = Wallet.objects.filter(status=WalletStatus.ACTIVE)
    if customer_ids is not None:
        wallets = wallets.filter(customer_id__in=list(customer_ids))
    if fresher_than is not None:
        stale = Q(last_ongoing_balance_sync_at__isnull=True) | Q(last_ongoing_balance_sync_at__lt=now - fresher_than)
        wallets = wallets.filter(customer_id__in=wallets.filter(stale).values("customer_id"))
    by_customer: dict[Any, list[Any]] = {}
    for wallet_id, customer_id in wallets.values_list("pk", "customer_id"):
        by_customer.setdefault(customer_id, []).append(wallet_id)
    refreshed = 0
    for customer_id in by_customer:
        usage = customer_ongoing_usage(customer_id=customer_id, now=now)
        with transaction.atomic():
            locked = ledger.lock_wallets(Wallet.objects.filter(customer_id=customer_id, status=WalletStatus.ACTIVE))
            from .consumption import application_order

            left = dict(usage)
            for wallet in application_order(locked):
                wanted = left.get(wallet.currency, ZERO)
                taken = min(wanted, wallet.balance)
                left[wallet.currency] = wanted - taken
                was_depleted = wallet.depleted_ongoing_balance
                wallet.ongoing_usage_balance = round_amount(taken, wallet.currency)
                wallet.ongoing_balance = wallet.balance - wallet.ongoing_usage_balance
                wallet.credits_ongoing_usage_balance = wallet.to_credits(wallet.ongoing_usage_balance)
                wallet.credits_ongoing_balance = wallet.credits_balance - wallet.credits_ongoing_usage_balance
                wallet.depleted_ongoing_balance = wallet.ongoing_balance <= 0
                wallet.last_ongoing_balance_sync_at = now
                wallet.save(
                    update_fields=[
                        "ongoing_usage_balance",
                        "ongoing_balance",
                        "credits_ongoing_usage_balance",
                        "credits_ongoing_balance",
                        "depleted_ongoing_balance",
                        "last_ongoing_balance_sync_at",
                        "updated_at",
                    ]
                )
                if wallet.depleted_ongoing_balance and not was_depleted:
                    signals.wallet_depleted_ongoing_balance.send(sender=Wallet, wallet_id=wallet.pk)
                threshold_check_locked(wallet, now=now)
                refreshed += 1
            # After every invoice's consumption too (this refresh follows it): balance alerts.
            alerts_check_locked(locked, now=now)
    return refreshed


def wallet_by_id(wallet_id: Any) -> Wallet:
    parsed = _uuid(wallet_id)
    wallet = Wallet.objects.select_related("customer").filter(pk=parsed).first() if parsed else None
    if wallet is None:
        raise NotFoundError("wallet")
    return wallet
