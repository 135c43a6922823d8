"""When usage moves, check the subscription's alerts (and progressive billing thresholds), once
per subscription per ingestion batch, never per event:

1. metrics sends `events_batch_stored` after an ingestion batch commits, with the distinct external
   subscription ids it stored events for. `activities_record_for_external_ids` keeps those that
   have live alerts or usage thresholds (one query) and writes one SubscriptionActivity row
   each (unique: a subscription already waiting is not queued twice), then queues one task per
   subscription after commit.
2. The task (`subscription_usage_evaluate`) takes the row (locked, skipped when another worker
   has it), computes the current usage once, evaluates every alert, runs progressive billing,
   and deletes the row in the same transaction. A task that is lost or fails leaves its row:
   the sweep (every 5 minutes) finds it again.
3. A crossing is a row of AlertCrossing, unique per (alert, period, value): the crossings a
   database insert accepts are announced (alert.triggered) in the same transaction; a second
   evaluation, however concurrent, announces nothing again.

Crossed values (Lago's UsageMonitoring::Alert#find_thresholds_crossed, increasing): each
one-time threshold at or below the current value; a recurring threshold then repeats every
`value` above the highest one-time threshold (initial + k x value). Amount alerts compare cents
(Lago's values for amounts are cents), unit alerts units.

Wallet alerts (decreasing, Lago's find_thresholds_crossed_decreasing) compare the wallet's
balance, credits, ongoing balance or ongoing credits with the value the alert saw last: a
threshold is crossed when the value falls from above it to it or below; a recurring one repeats
every `value` below the lowest one-time threshold (initial - k x value). They are evaluated
inline, wherever a wallet's balance or ongoing balance moves (top-ups, voids, settled purchases,
re-credits, the ongoing balance refresh that follows every invoice's consumption), with the
wallet locked. A crossing's "period" is the time of the evaluation that saw the value above the
threshold: a balance that falls through 50.00, rises above it and falls again crosses twice, and
one fall is announced once (the unique constraint, whatever races).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from billing_project.after_commit import delay_after_commit
from billing_project.money import decimal_places
from plans.models import Subscription, SubscriptionStatus

from ..usage import CustomerUsage, customer_usage
from . import lifetime
from .models import (
    Alert,
    AlertCrossing,
    AlertDirection,
    AlertThreshold,
    AlertType,
    SubscriptionActivity,
    TriggeredAlert,
)
from .signals import alert_triggered_in_tx

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
# Lifetime alerts are crossed once in a subscription's life: their crossings share this "period".
LIFETIME_PERIOD = datetime(1970, 1, 1, tzinfo=UTC)
# A recurring threshold crossed more often than this in one evaluation announces the last ones.
MAX_RECURRING_CROSSINGS = 100
SWEEP_SETTLE = timedelta(minutes=1)


# --------------------------------------------------------------------------------------------
# Pure: which values are crossed


def crossed_values(thresholds: Iterable[AlertThreshold], current: Decimal) -> list[Decimal]:
    """Every threshold value at or below `current` (increasing alerts), recurring steps included."""
    one_time = sorted({row.value for row in thresholds if not row.recurring})
    crossed = [value for value in one_time if value <= current]
    recurring = next((row for row in thresholds if row.recurring), None)
    if recurring is not None and recurring.value > 0:
        initial = one_time[-1] if one_time else ZERO
        steps = int(((current - initial) / recurring.value).to_integral_value(rounding=ROUND_FLOOR))
        first = max(1, steps - MAX_RECURRING_CROSSINGS + 1)
        crossed += [initial + k * recurring.value for k in range(first, steps + 1)]
    return sorted(set(crossed))


def crossed_values_decreasing(
    thresholds: Iterable[AlertThreshold], previous: Decimal, current: Decimal
) -> list[Decimal]:
    """The threshold values a fall from `previous` to `current` passed (current <= value <
    previous), recurring steps below the lowest one-time threshold included (Lago's
    UsageMonitoring::Alert#find_thresholds_crossed_decreasing; a value equal to `previous` was
    crossed by the evaluation that saw it, so it is not crossed again)."""
    thresholds = list(thresholds)
    if current >= previous:
        return []
    one_time = sorted({row.value for row in thresholds if not row.recurring})
    if one_time and current > one_time[-1]:
        return []
    crossed = [value for value in one_time if current <= value < previous]
    recurring = next((row for row in thresholds if row.recurring), None)
    if recurring is not None and recurring.value > 0:
        step = recurring.value
        initial = one_time[0] if one_time else ZERO
        # initial - k x step for k >= 1, within [current, previous).
        lowest = int(((initial - current) / step).to_integral_value(rounding=ROUND_FLOOR))
        highest_excluded = (initial - previous) / step
        first = max(1, int(highest_excluded.to_integral_value(rounding=ROUND_FLOOR)) + 1)
        first = max(first, lowest - MAX_RECURRING_CROSSINGS + 1)
        crossed += [initial - k * step for k in range(first, lowest + 1)]
    return sorted(set(crossed))


def formatted_crossings(alert: Alert, values: Sequence[Decimal]) -> list[dict[str, Any]]:
    """Lago's crossed_thresholds: {code, value, recurring} per value (one-time ones first)."""
    thresholds = list(alert.thresholds.all())
    one_time = {row.value: row for row in thresholds if not row.recurring}
    recurring = next((row for row in thresholds if row.recurring), None)
    rows = []
    for value in values:
        threshold = one_time.get(value)
        if threshold is not None:
            rows.append({"code": threshold.code or None, "value": _text(value), "recurring": False})
        else:
            rows.append(
                {"code": (recurring.code or None) if recurring else None, "value": _text(value), "recurring": True}
            )
    return sorted(rows, key=lambda row: (row["recurring"], Decimal(row["value"])))


def _text(value: Decimal) -> str:
    return f"{Decimal(value).normalize():f}"


# --------------------------------------------------------------------------------------------
# Activity: what to evaluate


def subscriptions_watched(external_subscription_ids: Iterable[str]) -> list[Any]:
    """The active subscriptions among `external_subscription_ids` that have live alerts (or
    usage thresholds), in one query."""
    from ..progressive import watched_subscriptions_q

    alerts = Alert.objects.filter(external_subscription_id=OuterRef("external_id"), deleted_at__isnull=True)
    return list(
        Subscription.objects.filter(external_id__in=list(external_subscription_ids), status=SubscriptionStatus.ACTIVE)
        .filter(Q(Exists(alerts)) | watched_subscriptions_q())
        .values_list("pk", flat=True)
    )


def activities_record(*, subscription_ids: Sequence[Any]) -> None:
    """One activity row per subscription (a row already waiting stays), and its task after commit."""
    from ..tasks import evaluate_subscription_usage

    if not subscription_ids:
        return
    SubscriptionActivity.objects.bulk_create(
        [SubscriptionActivity(subscription_id=pk) for pk in subscription_ids], ignore_conflicts=True
    )
    for pk in subscription_ids:
        delay_after_commit(evaluate_subscription_usage, str(pk))


def activities_record_for_external_ids(*, external_subscription_ids: Iterable[str]) -> int:
    """metrics' events_batch_stored receiver: returns how many subscriptions were queued."""
    watched = subscriptions_watched(external_subscription_ids)
    with transaction.atomic():
        activities_record(subscription_ids=watched)
    return len(watched)


# --------------------------------------------------------------------------------------------
# Evaluation


@dataclass
class Evaluation:
    triggered: list[TriggeredAlert]
    progressive_invoice_ids: list[Any]


def _alert_value(alert: Alert, usage: CustomerUsage, lifetime_total: Decimal | None) -> Decimal | None:
    """The value an alert compares with its thresholds (cents for amounts, units for units).
    A metric alert whose metric the plan does not price has no value (Lago skips it)."""
    currency = usage.currency
    scale = Decimal(10) ** decimal_places(currency)
    if alert.alert_type == AlertType.CURRENT_USAGE_AMOUNT:
        return usage.amount * scale
    if alert.alert_type == AlertType.LIFETIME_USAGE_AMOUNT:
        return (lifetime_total or ZERO) * scale
    fees = [
        fee
        for fee in usage.fees
        if fee.charge is not None and fee.charge.billable_metric_id == alert.billable_metric_id
    ]
    if not fees:
        return None
    if alert.alert_type == AlertType.BILLABLE_METRIC_CURRENT_USAGE_AMOUNT:
        return sum((fee.amount for fee in fees), ZERO) * scale
    return sum((fee.units for fee in fees), ZERO)


def alert_evaluate(
    *,
    alert: Alert,
    current: Decimal,
    period_from: datetime,
    now: datetime,
    subscription: Subscription | None = None,
    wallet: Any = None,
) -> TriggeredAlert | None:
    """Record the alert's new crossings at `current` and announce them (inside the caller's
    transaction); None when nothing new was crossed. A subscription's alert or a wallet's."""
    previous = alert.previous_value
    if alert.direction == AlertDirection.DECREASING:
        candidates = crossed_values_decreasing(alert.thresholds.all(), previous, current)
    else:
        candidates = crossed_values(alert.thresholds.all(), current)
    alert.previous_value = current
    alert.last_processed_at = now
    alert.save(update_fields=["previous_value", "last_processed_at", "updated_at"])
    if not candidates:
        return None
    seen = set(
        AlertCrossing.objects.filter(alert=alert, period_from_datetime=period_from, value__in=candidates).values_list(
            "value", flat=True
        )
    )
    new = [value for value in candidates if value not in seen]
    if not new:
        return None
    triggered = TriggeredAlert.objects.create(
        alert=alert,
        subscription=subscription,
        wallet=wallet,
        current_value=current,
        previous_value=previous,
        crossed_thresholds=formatted_crossings(alert, new),
        triggered_at=now,
    )
    # The unique constraint is the guarantee: a racing evaluation that recorded one of these
    # values first makes this insert fail, and the caller's savepoint drops this announcement.
    AlertCrossing.objects.bulk_create(
        [
            AlertCrossing(alert=alert, period_from_datetime=period_from, value=value, triggered_alert=triggered)
            for value in new
        ]
    )
    alert_triggered_in_tx.send(sender=TriggeredAlert, triggered_alert_id=triggered.pk)
    return triggered


def subscription_usage_evaluate(*, subscription_id: Any, now: datetime | None = None) -> Evaluation | None:
    """The task's work: None when no activity row waits for the subscription (done already, or
    another worker holds it)."""
    from .. import progressive

    now = now or timezone.now()
    with transaction.atomic():
        activity = (
            SubscriptionActivity.objects.select_for_update(skip_locked=True)
            .filter(subscription_id=subscription_id)
            .first()
        )
        if activity is None:
            return None
        subscription = Subscription.objects.select_related("customer", "plan").filter(pk=subscription_id).first()
        activity.delete()
        if subscription is None or subscription.status != SubscriptionStatus.ACTIVE:
            return Evaluation(triggered=[], progressive_invoice_ids=[])
        alerts = list(
            Alert.objects.select_for_update()
            .filter(external_subscription_id=subscription.external_id, deleted_at__isnull=True)
            .order_by("created_at", "id")
        )
        usage = customer_usage(subscription=subscription, at=now)
        needs_lifetime = any(alert.alert_type == AlertType.LIFETIME_USAGE_AMOUNT for alert in alerts)
        figures = None
        if needs_lifetime or progressive.has_thresholds(subscription):
            figures = lifetime.lifetime_usage_compute(subscription=subscription, at=now, usage=usage)
        triggered = []
        for alert in alerts:
            value = _alert_value(alert, usage, figures.total_amount if figures else None)
            if value is None:
                continue
            period_from = (
                LIFETIME_PERIOD if alert.alert_type == AlertType.LIFETIME_USAGE_AMOUNT else usage.from_datetime
            )
            try:
                with transaction.atomic():
                    row = alert_evaluate(
                        alert=alert, subscription=subscription, current=value, period_from=period_from, now=now
                    )
            except IntegrityError:
                logger.info("usage alert %s: crossings recorded by a concurrent evaluation", alert.pk)
                continue
            if row is not None:
                triggered.append(row)
        # In the same transaction: a failure leaves the activity row for the sweep to retry
        # (the alerts' crossings, recorded once, are not announced again).
        invoice_ids = []
        if figures is not None:
            invoice_ids = progressive.progressive_billing_check(subscription=subscription, figures=figures, now=now)
    return Evaluation(triggered=triggered, progressive_invoice_ids=invoice_ids)


# --------------------------------------------------------------------------------------------
# Wallet alerts

_WALLET_VALUES = {
    # Lago's app/models/usage_monitoring/wallet_*_alert.rb#find_value: cents for amounts.
    AlertType.WALLET_BALANCE_AMOUNT: ("balance", True),
    AlertType.WALLET_CREDITS_BALANCE: ("credits_balance", False),
    AlertType.WALLET_ONGOING_BALANCE_AMOUNT: ("ongoing_balance", True),
    AlertType.WALLET_CREDITS_ONGOING_BALANCE: ("credits_ongoing_balance", False),
}


def wallet_alert_value(alert: Alert, wallet: Any) -> Decimal:
    """What a wallet alert compares: the balance or ongoing balance in cents, or credits."""
    field, in_cents = _WALLET_VALUES[AlertType(alert.alert_type)]
    value = Decimal(getattr(wallet, field))
    return value * Decimal(10) ** decimal_places(wallet.currency) if in_cents else value


def wallet_alerts_evaluate_locked(wallets: Sequence[Any], *, now: datetime | None = None) -> list[TriggeredAlert]:
    """Inside the caller's transaction, the wallets locked and their balances as saved (or about
    to be): evaluate their live alerts against the values in memory. One query when none of the
    wallets has an alert, whatever their number. Terminated wallets are not evaluated."""
    from ..wallets.models import WalletStatus

    active = {wallet.pk: wallet for wallet in wallets if wallet.status == WalletStatus.ACTIVE}
    if not active:
        return []
    now = now or timezone.now()
    alerts = list(
        Alert.objects.select_for_update(of=("self",))
        .filter(wallet_id__in=list(active), deleted_at__isnull=True)
        .order_by("created_at", "id")
        .prefetch_related("thresholds")
    )
    triggered = []
    for alert in alerts:
        wallet = active[alert.wallet_id]
        period_from = alert.last_processed_at or alert.created_at
        try:
            with transaction.atomic():
                row = alert_evaluate(
                    alert=alert,
                    wallet=wallet,
                    current=wallet_alert_value(alert, wallet),
                    period_from=period_from,
                    now=now,
                )
        except IntegrityError:
            logger.info("wallet alert %s: crossing recorded by a concurrent evaluation", alert.pk)
            continue
        if row is not None:
            triggered.append(row)
    return triggered


def activities_sweep(*, now: datetime | None = None) -> int:
    """Every 5 minutes: evaluate the subscriptions whose activity row outlived its task."""
    now = now or timezone.now()
    waiting = list(
        SubscriptionActivity.objects.filter(created_at__lt=now - SWEEP_SETTLE).values_list("subscription_id", flat=True)
    )
    done = 0
    for subscription_id in waiting:
        try:
            if subscription_usage_evaluate(subscription_id=subscription_id) is not None:
                done += 1
        except Exception:
            logger.exception("usage monitoring: evaluation of subscription %s failed", subscription_id)
    return done
