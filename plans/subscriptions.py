"""Subscription lifecycle: create, plan change (upgrade now, downgrade at the period end),
update, terminate or cancel, and the hourly activation of what became due. A plan change ends
one row and starts another with the same external_id, linked by `previous_subscription`."""

# Signals (plans.signals) are sent after commit so invoicing bills only what was committed; their
# `*_in_tx` twins inside the transaction, so the webhook outbox rows commit with the change. Every
# function locks the customer row first, so one customer's subscription requests run in turn.

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from billing_project.after_commit import send_after_commit
from customers.locks import lock_customer
from customers.models import Customer
from customers.services import customer_currency_claim

from . import periods
from .errors import NotFoundError, PlansError
from .locks import lock_subscription
from .models import BillingTime, Plan, Subscription, SubscriptionStatus
from .overrides import subscription_overrides_set
from .signals import (
    subscription_started,
    subscription_started_in_tx,
    subscription_terminated,
    subscription_terminated_in_tx,
)

logger = logging.getLogger(__name__)

ACTIVE = SubscriptionStatus.ACTIVE
PENDING = SubscriptionStatus.PENDING
TERMINATED = SubscriptionStatus.TERMINATED
CANCELED = SubscriptionStatus.CANCELED


def _send_started(subscription: Subscription) -> None:
    subscription_id = subscription.pk
    # Inside the transaction, the row saved: the webhook outbox row commits with the change.
    subscription_started_in_tx.send(sender=Subscription, subscription_id=subscription_id)
    send_after_commit(subscription_started, sender=Subscription, subscription_id=subscription_id)


def _send_terminated(
    subscription: Subscription, *, upgraded_to: Subscription | None = None, downgraded_to: Subscription | None = None
) -> None:
    subscription_id = subscription.pk
    subscription_terminated_in_tx.send(sender=Subscription, subscription_id=subscription_id)
    send_after_commit(
        subscription_terminated,
        sender=Subscription,
        subscription_id=subscription_id,
        upgraded_to_id=upgraded_to.pk if upgraded_to else None,
        downgraded_to_id=downgraded_to.pk if downgraded_to else None,
    )


def _lock_customer(customer: Customer) -> Customer:
    return lock_customer(customer)


def _activate(subscription: Subscription, started_at: datetime) -> None:
    subscription.status = ACTIVE
    subscription.started_at = started_at
    subscription.save(update_fields=["status", "started_at", "updated_at"])
    _send_started(subscription)


def _cancel(subscription: Subscription, now: datetime) -> None:
    subscription.status = CANCELED
    subscription.canceled_at = now
    subscription.save(update_fields=["status", "canceled_at", "updated_at"])


def _terminate(subscription: Subscription, at: datetime, **signal: Subscription | None) -> None:
    subscription.status = TERMINATED
    subscription.terminated_at = at
    subscription.save(update_fields=["status", "terminated_at", "updated_at"])
    for follower in subscription.next_subscriptions.filter(status=PENDING):
        if follower not in signal.values():
            _cancel(follower, at)
    _send_terminated(subscription, **signal)


def pending_downgrade(subscription: Subscription) -> Subscription | None:
    """The subscription waiting to replace `subscription` at its period end, if any."""
    if subscription.pk is None:
        return None
    return subscription.next_subscriptions.filter(status=PENDING).select_related("plan").first()


def _is_upgrade(old: Plan, new: Plan) -> bool:
    """Lago's rule: the new plan costs at least as much per year (weekly x52, monthly x12...)."""
    return periods.annualized_amount(new.amount.amount, new.interval) >= periods.annualized_amount(
        old.amount.amount, old.interval
    )


def _check_currency(customer: Customer, plan: Plan) -> None:
    """The customer's currency is set by its first subscription; later plans must match."""
    if not customer_currency_claim(customer=customer, currency=str(plan.amount.currency)):
        raise PlansError(None, "currencies_does_not_match")


def _check_dates(*, subscription_at: datetime | None, ending_at: datetime | None, now: datetime) -> None:
    errors = {}
    if ending_at is not None and (ending_at <= now or (subscription_at is not None and ending_at <= subscription_at)):
        errors["ending_at"] = ["invalid_date"]
    if errors:
        raise PlansError(errors)


@transaction.atomic
def subscription_create(
    *,
    customer: Customer,
    plan: Plan,
    external_id: str,
    name: str = "",
    billing_time: str | None = None,
    subscription_at: datetime | None = None,
    ending_at: datetime | None = None,
    plan_overrides: Any = None,
    now: datetime | None = None,
) -> Subscription:
    """Lago's POST /subscriptions.

    - A new external_id starts a subscription: pending when subscription_at is in the future,
      else active from subscription_at (a past date backdates it).
    - The external_id of the customer's live subscription with the same plan: no change.
    - With another plan: a plan change. An upgrade (annualized price at least the old one)
      ends the old subscription now and starts the new one now; a downgrade creates the new
      one pending until the end of the current billing period (the old one is returned, as
      Lago does). A subscription that has not started yet just takes the new plan.
    """
    now = now or timezone.now()
    if plan_overrides is not None and not isinstance(plan_overrides, dict):
        raise PlansError.field("plan_overrides", "value_is_invalid")
    subscription = _subscription_create(
        customer=customer,
        plan=plan,
        external_id=external_id,
        name=name,
        billing_time=billing_time,
        subscription_at=subscription_at,
        ending_at=ending_at,
        now=now,
    )
    if plan_overrides:
        # The subscription on `plan`: the answer itself, or a downgrade waiting behind it.
        target = subscription if _on_plan(subscription, plan) else pending_downgrade(subscription)
        if target is not None:
            subscription_overrides_set(subscription=target, overrides=plan_overrides, now=now)
        subscription.refresh_from_db()
    return subscription


def _on_plan(subscription: Subscription, plan: Plan) -> bool:
    """On `plan` itself or on an override of it."""
    return plan.pk in (subscription.plan_id, subscription.plan.parent_id)


def _subscription_create(
    *,
    customer: Customer,
    plan: Plan,
    external_id: str,
    name: str,
    billing_time: str | None,
    subscription_at: datetime | None,
    ending_at: datetime | None,
    now: datetime,
) -> Subscription:
    external_id = (external_id or "").strip()
    if not external_id:
        raise PlansError.field("external_id", "value_is_mandatory")
    if billing_time is not None and billing_time not in BillingTime.values:
        raise PlansError.field("billing_time", "value_is_invalid")
    customer = _lock_customer(customer)
    if plan.deleted_at is not None:
        raise NotFoundError("plan")
    subscription_at = subscription_at or now
    _check_dates(subscription_at=subscription_at, ending_at=ending_at, now=now)

    live = list(
        Subscription.objects.select_for_update(of=("self",))
        .filter(external_id=external_id, status__in=(ACTIVE, PENDING))
        .select_related("plan")
    )
    mine = [row for row in live if row.customer_id == customer.pk]
    current = next((row for row in mine if row.status == ACTIVE), None) or next(
        (row for row in mine if row.status == PENDING and row.previous_subscription_id is None), None
    )
    if current is None and live:
        # The external_id belongs to another customer's live subscription.
        raise PlansError.field("external_id", "value_already_exist")
    _check_currency(customer, plan)

    if current is None:
        return _subscription_start(
            customer=customer,
            plan=plan,
            external_id=external_id,
            name=name,
            billing_time=billing_time or BillingTime.CALENDAR,
            subscription_at=subscription_at,
            ending_at=ending_at,
            now=now,
        )
    if _on_plan(current, plan):
        return current
    if current.status == PENDING:
        # Not started yet: it simply becomes a subscription to the other plan.
        current.plan = plan
        current.name = name or current.name
        current.save(update_fields=["plan", "name", "updated_at"])
        return current
    if _is_upgrade(current.plan, plan):
        return _upgrade(current, plan, name=name, ending_at=ending_at, now=now)
    return _downgrade(current, plan, name=name, ending_at=ending_at, now=now)


def _subscription_start(
    *,
    customer: Customer,
    plan: Plan,
    external_id: str,
    name: str,
    billing_time: str,
    subscription_at: datetime,
    ending_at: datetime | None,
    now: datetime,
) -> Subscription:
    starts_now = subscription_at <= now
    try:
        with transaction.atomic():
            subscription = Subscription.objects.create(
                customer=customer,
                plan=plan,
                external_id=external_id,
                name=name or "",
                billing_time=billing_time,
                subscription_at=subscription_at,
                ending_at=ending_at,
                status=ACTIVE if starts_now else PENDING,
                started_at=subscription_at if starts_now else None,
                recorded_at=now,
            )
            if starts_now:
                _send_started(subscription)
    except IntegrityError:
        # Another customer's request took the external_id first (the partial unique indexes on
        # pending and active rows decide; each customer's lock cannot see the other's).
        raise PlansError.field("external_id", "value_already_exist") from None
    return subscription


def _successor(
    current: Subscription, plan: Plan, *, name: str, ending_at: datetime | None, now: datetime, **state: Any
) -> Subscription:
    """The subscription that continues `current` on `plan`: the same customer, external id,
    billing time and anniversary (subscription_at), in `state`. A plan change that was waiting
    behind `current` is superseded by this one (canceled)."""
    for follower in current.next_subscriptions.filter(status=PENDING):
        _cancel(follower, now)
    return Subscription.objects.create(
        customer=current.customer,
        plan=plan,
        external_id=current.external_id,
        name=name or current.name,
        billing_time=current.billing_time,
        subscription_at=current.subscription_at,
        ending_at=ending_at if ending_at is not None else current.ending_at,
        previous_subscription=current,
        recorded_at=now,
        **state,
    )


def _upgrade(
    current: Subscription, plan: Plan, *, name: str, ending_at: datetime | None, now: datetime
) -> Subscription:
    # Terminated first: the partial unique index allows one active row per external id.
    current.status = TERMINATED
    current.terminated_at = now
    current.save(update_fields=["status", "terminated_at", "updated_at"])
    # The anniversary stays the first subscription's; billing of the new plan starts now.
    new = _successor(current, plan, name=name, ending_at=ending_at, now=now, status=ACTIVE, started_at=now)
    _send_terminated(current, upgraded_to=new)
    _send_started(new)
    return new


def _downgrade(
    current: Subscription, plan: Plan, *, name: str, ending_at: datetime | None, now: datetime
) -> Subscription:
    downgrade_at = periods.subscription_period(current, now).to_datetime
    _successor(current, plan, name=name, ending_at=ending_at, now=now, status=PENDING, downgrade_at=downgrade_at)
    current.refresh_from_db()
    return current


_UNSET: Any = object()


@transaction.atomic
def subscription_update(
    *,
    subscription: Subscription,
    name: str | None = None,
    ending_at: datetime | None = _UNSET,
    subscription_at: datetime | None = None,
    plan_overrides: Any = None,
    now: datetime | None = None,
) -> Subscription:
    """Lago's PUT /subscriptions/{external_id}: the name, the end date (None clears it), the
    start of a subscription that has not started yet (reaching now activates it), and its own
    terms (`plan_overrides`, plans.overrides)."""
    now = now or timezone.now()
    if plan_overrides is not None and not isinstance(plan_overrides, dict):
        raise PlansError.field("plan_overrides", "value_is_invalid")
    _lock_customer(subscription.customer)
    subscription = lock_subscription(subscription)
    if subscription.status in (TERMINATED, CANCELED):
        raise PlansError(None, "subscription_not_editable")
    fields = ["updated_at"]
    if name is not None:
        subscription.name = name
        fields.append("name")
    starts_later = subscription.status == PENDING and subscription.previous_subscription_id is None
    if subscription_at is not None and subscription_at != subscription.subscription_at:
        if not starts_later:
            raise PlansError.field("subscription_at", "cannot_be_changed_once_started")
        subscription.subscription_at = subscription_at
        fields.append("subscription_at")
    if ending_at is not _UNSET:
        _check_dates(subscription_at=subscription.subscription_at, ending_at=ending_at, now=now)
        subscription.ending_at = ending_at
        fields.append("ending_at")
    subscription.save(update_fields=fields)
    if plan_overrides:
        subscription_overrides_set(subscription=subscription, overrides=plan_overrides, now=now)
    if starts_later and subscription.subscription_at <= now:
        _activate(subscription, subscription.subscription_at)
    return subscription


@transaction.atomic
def subscription_terminate(*, subscription: Subscription, now: datetime | None = None) -> Subscription:
    """Lago's DELETE /subscriptions/{external_id}: an active subscription is terminated now
    (invoicing bills its last partial period on `subscription_terminated`) and a downgrade
    waiting behind it is canceled; a pending one is canceled. Repeating it changes nothing."""
    now = now or timezone.now()
    _lock_customer(subscription.customer)
    subscription = lock_subscription(subscription)
    if subscription.status == PENDING:
        _cancel(subscription, now)
    elif subscription.status == ACTIVE:
        _terminate(subscription, now)
    return subscription


# --------------------------------------------------------------------------------------------
# The hourly task


def subscriptions_activate_due(*, now: datetime | None = None) -> dict[str, int]:
    """Everything that became due by `now`, each subscription in its own transaction:
    pending subscriptions whose start arrived become active (started at subscription_at);
    subscriptions whose ending_at passed are terminated at ending_at; downgrades whose period
    ended swap plans at the period boundary. Safe to run again and concurrently (rows are
    locked and re-checked)."""
    now = now or timezone.now()
    counts = {"activated": 0, "ended": 0, "downgraded": 0}
    rows = Subscription.objects.values_list("pk", "customer_id")
    due_starts = rows.filter(status=PENDING, previous_subscription__isnull=True, subscription_at__lte=now)
    for pk, customer_id in list(due_starts):
        counts["activated"] += _run_one(_activate_due, pk, customer_id, now)
    due_ends = rows.filter(status=ACTIVE, ending_at__lte=now)
    for pk, customer_id in list(due_ends):
        counts["ended"] += _run_one(_end_due, pk, customer_id, now)
    downgrades = rows.filter(status=PENDING, previous_subscription__isnull=False, downgrade_at__lte=now)
    for pk, customer_id in list(downgrades):
        counts["downgraded"] += _run_one(_downgrade_due, pk, customer_id, now)
    return counts


def _run_one(step: Any, pk: Any, customer_id: Any, now: datetime) -> int:
    try:
        with transaction.atomic():
            # The customer's lock first, as every other subscription change takes it.
            lock_customer(customer_id)
            subscription = (
                Subscription.objects.select_for_update(of=("self",))
                .select_related("customer", "plan")
                .filter(pk=pk)
                .first()
            )
            return 1 if subscription is not None and step(subscription, now) else 0
    except Exception:
        # One broken row must not stop the others; it is retried on the next run.
        logger.exception("plans: %s failed for subscription %s", step.__name__, pk)
        return 0


def _activate_due(subscription: Subscription, now: datetime) -> bool:
    if subscription.status != PENDING or subscription.subscription_at > now:
        return False
    _activate(subscription, subscription.subscription_at)
    return True


def _end_due(subscription: Subscription, now: datetime) -> bool:
    if subscription.status != ACTIVE or not subscription.ending_at:
        return False
    if subscription.ending_at > now:
        return False
    _terminate(subscription, subscription.ending_at)
    return True


def _downgrade_due(follower: Subscription, now: datetime) -> bool:
    if follower.status != PENDING or follower.previous_subscription_id is None:
        return False
    previous = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("customer", "plan")
        .get(pk=follower.previous_subscription_id)
    )
    if previous.status != ACTIVE:
        return False
    swap_at = follower.downgrade_at
    if swap_at is None or swap_at > now:
        return False
    _terminate(previous, swap_at, downgraded_to=follower)
    _activate(follower, swap_at)
    return True


def live_subscription(external_id: str, status: str | None = None) -> Subscription | None:
    """The subscription the API means by `external_id`: of the given status, else the active
    one, else the one starting later, else the most recently ended."""
    rows = Subscription.objects.filter(external_id=external_id).select_related("customer", "plan")
    if status:
        return rows.filter(status=status).order_by("-created_at").first()
    return (
        rows.filter(status=ACTIVE).first()
        or rows.filter(Q(status=PENDING)).order_by("-created_at").first()
        or rows.order_by("-created_at").first()
    )
