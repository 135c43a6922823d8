"""Pay-in-advance charges: each event such a charge prices is billed when it arrives.

Ingestion announces new events whose code a pay-in-advance charge prices
(`metrics.signals.events_stored`); invoicing enqueues one task per event, which calls
`fees_create_for_event`. Per charge of the event's subscription (billing.pay_in_advance_fee
computes the amount): an invoiceable charge gets an invoice of type `subscription` holding that
one fee, finalized at once (number, taxes, coupons, credit notes, PDF and payment after commit,
no grace period: the event already happened); a charge that is not invoiceable, or a fee of zero,
is recorded without an invoice (with its taxes), as Lago does for non-invoiceable charges and
instead of numbering an empty invoice per event.

Exactly once: the fee is unique on (charge, subscription, event transaction id) in the database,
so a retried or duplicated task rolls back at the fee's insert and bills nothing twice.

At least once: an announcement is lost when the broker is down or a task dies, so a periodic
sweep (`fees_sweep_missed`, every 10 minutes, and `manage.py bill_missed_advance_events`) finds
the recent events of pay-in-advance charges that have no fee yet (an anti-join on the fee's
unique key) and bills them through the same function.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from customers.models import Organization
from metrics.models import BillableMetric, Event
from plans.models import Charge, Subscription, SubscriptionStatus

from . import billing, selectors, services, totals
from .models import Fee, FeeAppliedTax, Invoice

logger = logging.getLogger(__name__)

ACTOR = "system:pay_in_advance"
_UNIQUE = "fee_pay_in_advance_event_unique"
# SQLite names the columns instead of the constraint.
_UNIQUE_SQLITE = "invoicing_fee.pay_in_advance_event_transaction_id"


def subscription_for_event(event: Event) -> Subscription | None:
    """The subscription an event belongs to: the one with its external id that had started at
    the event's timestamp and was not terminated yet (several share an external id across plan
    changes). None for an event of an unknown subscription or outside every subscription."""
    rows = billing.with_billing_relations(
        Subscription.objects.filter(
            external_id=event.external_subscription_id,
            status__in=(SubscriptionStatus.ACTIVE, SubscriptionStatus.TERMINATED),
            started_at__lte=event.timestamp,
        )
        .filter(Q(terminated_at__isnull=True) | Q(terminated_at__gt=event.timestamp))
        .order_by("-started_at")
    )[:1]
    found = selectors.with_local_timezones(list(rows))
    return found[0] if found else None


def pay_in_advance_charges(subscription: Subscription, code: str) -> list[Charge]:
    return [
        charge
        for charge in billing.billable_charges(subscription)
        if charge.pay_in_advance and charge.billable_metric.code == code
    ]


def fees_create_for_event(
    *, external_subscription_id: str, transaction_id: str, actor: str = ACTOR, now: datetime | None = None
) -> list[Fee]:
    """Bill one stored event on every pay-in-advance charge of its subscription's plan that
    prices it. Returns the fees created now ([] when there is nothing to bill or it was billed
    already)."""
    event = Event.objects.filter(
        external_subscription_id=external_subscription_id, transaction_id=transaction_id
    ).first()
    if event is None:
        return []
    subscription = subscription_for_event(event)
    if subscription is None:
        return []
    created = []
    for charge in pay_in_advance_charges(subscription, event.code):
        fee = fee_create_for_event_charge(subscription=subscription, charge=charge, event=event, actor=actor, now=now)
        if fee is not None:
            created.append(fee)
    return created


def fee_create_for_event_charge(
    *, subscription: Subscription, charge: Charge, event: Event, actor: str = ACTOR, now: datetime | None = None
) -> Fee | None:
    """One event on one charge, in one transaction. None when the charge cannot price the event
    or the event was billed on it already."""
    fee = billing.pay_in_advance_fee(subscription, charge, event)
    if fee is None:
        return None
    try:
        with transaction.atomic():
            if charge.invoiceable and fee.amount > 0:
                _invoice_create(subscription=subscription, fee=fee, event=event, actor=actor, now=now)
            else:
                _fee_record(subscription=subscription, fee=fee)
    except IntegrityError as error:
        if _UNIQUE in str(error) or _UNIQUE_SQLITE in str(error):
            logger.info("invoicing: event %s on charge %s was billed already", event.transaction_id, charge.pk)
            return None
        raise
    return fee


def _fee_record(*, subscription: Subscription, fee: Fee) -> None:
    """A fee without an invoice, with its taxes (what the customer will owe on it)."""
    resolver = totals.TaxResolver(subscription.customer)
    taxes = totals.taxes_compute(invoice=None, fees=[fee], resolver=resolver, currency=fee.currency)
    fee.save(force_insert=True)
    if taxes.fee_taxes:
        FeeAppliedTax.objects.bulk_create(taxes.fee_taxes)


def _invoice_create(*, subscription: Subscription, fee: Fee, event: Event, actor: str, now: datetime | None) -> Invoice:
    """An invoice holding `fee` alone, finalized in this transaction, issued on the event's
    local date (the fee's insert comes before the number is taken: a duplicate fails there and
    never burns a number)."""
    return services.invoice_create_with_fees(
        subscription=subscription,
        window=billing.billing_window_in_advance_charge(subscription, event.timestamp),
        fees=lambda: [fee],
        actor=actor,
        context=services.RunContext(organization=Organization.current()),
        now=now,
        payload={"event": event.transaction_id},
    )


# --- the sweep: events whose announcement was lost ---------------------------------------------

DEFAULT_SWEEP_HOURS = 24
# Events younger than this are left to their announced task (in flight, not lost): the sweep
# racing it would only roll back at the fee's unique key, but costs both a pricing.
SWEEP_SETTLE = timedelta(minutes=2)
SWEEP_PAGE = 500


def sweep_hours() -> int:
    """How far back the sweep looks (settings.TOLLGATE_PAY_IN_ADVANCE_SWEEP_HOURS, default 24)."""
    return int(getattr(settings, "TOLLGATE_PAY_IN_ADVANCE_SWEEP_HOURS", DEFAULT_SWEEP_HOURS))


# Driven by the subscriptions and their live pay-in-advance charges, so each (subscription,
# metric code) pair is one range scan of the events' (external_subscription_id, code, timestamp)
# index over the window; the anti-join probes the fee's partial unique index (charge,
# subscription, pay_in_advance_event_transaction_id). Events a charge cannot price (a sum event
# without its field) are skipped here rather than priced again at every sweep. Paged by event id.
_MISSED_SQL = """
SELECT DISTINCT e.id, e.external_subscription_id, e.transaction_id
FROM {subscriptions} s
JOIN {charges} c ON c.plan_id = s.plan_id AND c.pay_in_advance AND c.deleted_at IS NULL
JOIN {metrics} m ON m.id = c.billable_metric_id AND m.deleted_at IS NULL
JOIN {events} e
    ON e.external_subscription_id = s.external_id AND e.code = m.code
    AND e.timestamp >= %(since)s AND e.timestamp < %(until)s
    AND e.timestamp >= s.started_at AND (s.terminated_at IS NULL OR e.timestamp < s.terminated_at)
WHERE s.status IN (%(active)s, %(terminated)s)
    AND (s.terminated_at IS NULL OR s.terminated_at > %(since)s)
    AND s.started_at < %(until)s
    AND e.created_at < %(settled)s
    AND e.id > %(after_id)s
    AND (m.aggregation_type = %(count_agg)s OR {has_field})
    AND NOT EXISTS (
        SELECT 1 FROM {fees} f
        WHERE f.charge_id = c.id AND f.subscription_id = s.id
            AND f.pay_in_advance_event_transaction_id = e.transaction_id
    )
ORDER BY e.id
LIMIT %(limit)s
"""


def missed_events(
    *, since: datetime, until: datetime, settled: datetime, after_id: int = 0, limit: int = SWEEP_PAGE
) -> list[tuple[int, str, str]]:
    """(event id, external_subscription_id, transaction_id) of events with a timestamp in
    [since, until), received before `settled`, that a live pay-in-advance charge of their
    subscription prices and that have no fee on it yet; ordered by id, after `after_id`."""
    params: dict[str, Any] = {
        "since": since,
        "until": until,
        "settled": settled,
        "after_id": after_id,
        "limit": limit,
        "active": SubscriptionStatus.ACTIVE,
        "terminated": SubscriptionStatus.TERMINATED,
        "count_agg": "count_agg",
    }
    # "The event carries the metric's field": jsonb's `?` on PostgreSQL; json_extract on SQLite
    # (the demo database), where the sweep is only ever run by hand.
    has_field = (
        "e.properties ? m.field_name"
        if connection.vendor == "postgresql"
        else "json_extract(e.properties, '$.\"' || m.field_name || '\"') IS NOT NULL"
    )
    sql = _MISSED_SQL.format(
        subscriptions=Subscription._meta.db_table,
        charges=Charge._meta.db_table,
        metrics=BillableMetric._meta.db_table,
        events=Event._meta.db_table,
        fees=Fee._meta.db_table,
        has_field=has_field,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(row[0], row[1], row[2]) for row in cursor.fetchall()]


@dataclass
class SweepResult:
    events: int = 0  # events found without a fee
    billed: int = 0  # of which got at least one fee now
    fees: int = 0
    failed: int = 0


def fees_sweep_missed(
    *, hours: int | None = None, now: datetime | None = None, dry_run: bool = False, actor: str = "system:sweep"
) -> SweepResult:
    """Bill the events of the last `hours` (default sweep_hours()) that pay-in-advance charges
    price and that have no fee yet, each in its own transaction through fees_create_for_event
    (so a sweep racing a late task, or a second sweep, bills nothing twice). One event failing is
    logged and counted, the others go on. With dry_run, only counts them."""
    now = now or timezone.now()
    since = now - timedelta(hours=sweep_hours() if hours is None else hours)
    result = SweepResult()
    after_id = 0
    while True:
        page = missed_events(since=since, until=now, settled=now - SWEEP_SETTLE, after_id=after_id)
        for event_id, external_subscription_id, transaction_id in page:
            after_id = event_id
            result.events += 1
            if dry_run:
                continue
            try:
                fees = fees_create_for_event(
                    external_subscription_id=external_subscription_id,
                    transaction_id=transaction_id,
                    actor=actor,
                    now=now,
                )
            except Exception:
                logger.exception(
                    "invoicing: sweep could not bill event %s (%s)", transaction_id, external_subscription_id
                )
                result.failed += 1
                continue
            if fees:
                result.billed += 1
                result.fees += len(fees)
        if len(page) < SWEEP_PAGE:
            break
    if result.events:
        logger.warning(
            "invoicing: sweep found %s pay-in-advance event(s) without a fee, billed %s (%s fee(s)), %s failed",
            result.events,
            result.billed,
            result.fees,
            result.failed,
        )
    return result
