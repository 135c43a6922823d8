"""Pay-in-advance charges: each event such a charge prices is billed when it arrives.

Ingestion announces new events whose code a pay-in-advance charge prices
(`metrics.signals.events_stored`); invoicing enqueues one task per event, which calls
`fees_create_for_event`. Per charge of the event's subscription (`pay_in_advance_fee`
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
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from billing_project.money import from_cents
from customers.models import Organization
from metrics.aggregation import aggregate, aggregate_grouped
from metrics.aggregation import group_value as group_value_of
from metrics.models import AggregationType, BillableMetric, Event
from metrics.selectors import event_numeric_value, event_scalar_text
from plans import charge_models, periods
from plans.models import Charge, Subscription, SubscriptionStatus

from . import billing, buckets, selectors, services, totals, windows
from .models import Fee, FeeAppliedTax, FeeType, Invoice

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
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
    found = list(rows)
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
    fee = pay_in_advance_fee(subscription, charge, event)
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
        window=windows.in_advance_charge_window(subscription, event.timestamp),
        fees=[fee],
        actor=actor,
        context=services.RunContext(organization=Organization.current()),
        now=now,
        payload={"event": event.transaction_id},
    )


# --------------------------------------------------------------------------------------------
# Pricing one event of a pay-in-advance charge


def _advance_value(metric: BillableMetric, properties: Any) -> Decimal | str | None:
    """What one event adds: 1 (count), its number (sum), its value (unique count); None when the
    event carries no usable value (Lago creates no fee for it either)."""
    kind = metric.aggregation_type
    if kind == AggregationType.COUNT:
        return Decimal(1)
    if kind == AggregationType.SUM:
        return event_numeric_value(properties, metric.field_name)
    if kind == AggregationType.UNIQUE_COUNT:
        return event_scalar_text(properties, metric.field_name)
    return None


def _removes(properties: Any) -> bool:
    return isinstance(properties, dict) and properties.get("operation_type") == "remove"


def pay_in_advance_fee(subscription: Subscription, charge: Charge, event: Event) -> Fee | None:
    """The fee `event` costs on the pay-in-advance `charge` (unsaved; invoice unset), or None
    when the charge cannot price it (no usable value, an aggregation Lago never bills in advance).

    As Lago (Charges::ApplyPayInAdvanceChargeModelService): the increment of the charge model's
    amount that this event causes within its charges period, price(units before + the event's)
    - price(units before), so tiers, packages and free units run across the whole period.
    "Before" is every event of the period that sorts before this one by (timestamp, id): events
    of the same millisecond (a batch sent without timestamps) count in the order they were stored.
    A unique count value that is already active, or a removal, adds nothing (a zero fee). Never
    negative: a negative sum costs 0 (a refund is a credit note)."""
    metric = charge.billable_metric
    if metric.aggregation_type not in charge_models.PAY_IN_ADVANCE_AGGREGATIONS:
        return None
    own = _advance_value(metric, event.properties)
    if own is None:
        return None
    currency = billing.plan_currency(subscription)
    period = periods.subscription_charges_period(subscription, event.timestamp)
    bucket = buckets.event_bucket(charge, event.properties)
    properties = charge_models.properties_for(charge, bucket.charge_filter)
    filters: buckets.Filters = dict(bucket.filters or {})
    group_key = billing.grouping_keys(properties)
    group_value = group_value_of(event.properties, group_key) if group_key else None
    for key, value in billing.grouped_by_values(group_key, group_value).items():
        filters[key] = [v for v in filters.get(key, [value]) if v == value]
    with_values = billing.needs_event_values(charge.charge_model, properties)
    # A recurring metric's units carry over from period to period (`carried_over_fees` billed
    # them at the renewal): everything since the start counts as "before".
    scope = {
        "external_subscription_ids": [subscription.external_id],
        "from_datetime": windows.billing_start(subscription)
        if metric.recurring
        else billing.usage_from(subscription, period),
        "to_datetime": event.timestamp,
        "exclude_filters": bucket.exclude_filters,
    }
    before = aggregate(metric, filters=filters or None, with_event_values=with_values, **scope)
    same_instant = [
        other
        for other in Event.objects.filter(
            external_subscription_id=event.external_subscription_id,
            code=event.code,
            timestamp=event.timestamp,
            id__lt=event.id,
        ).order_by("id")
        if buckets.bucket_matches(bucket, other.properties)
        and (group_key is None or group_value_of(other.properties, group_key) == group_value)
    ]
    units = before.units
    count = before.events_count
    values = list(before.event_values or ())
    precise_cents = before.precise_total_amount_cents
    if metric.aggregation_type == AggregationType.UNIQUE_COUNT:
        field_name = metric.field_name
        tie_values = [(_advance_value(metric, other.properties), _removes(other.properties)) for other in same_instant]
        wanted = sorted({str(own)} | {str(value) for value, _ in tie_values if value is not None})
        active = {
            value
            for value, result in aggregate_grouped(
                metric, grouped_by=field_name, filters={**filters, field_name: wanted}, **scope
            ).items()
            if result.units > 0
        }
        for value, removes in tie_values:
            if value is None:
                continue
            if removes and value in active:
                active.discard(value)  # type: ignore[arg-type]
                units -= 1
            elif not removes and value not in active:
                active.add(value)  # type: ignore[arg-type]
                units += 1
            count += 1
            values.append(Decimal(1))
        increment = ZERO if _removes(event.properties) or own in active else Decimal(1)
        own_value = Decimal(1)
    else:
        for other in same_instant:
            value = _advance_value(metric, other.properties)
            if value is None:
                continue
            units += value  # type: ignore[operator]
            count += 1
            values.append(value)  # type: ignore[arg-type]
            precise_cents += other.precise_total_amount_cents or ZERO
        increment = own_value = own  # type: ignore[assignment]
    own_cents = event.precise_total_amount_cents or ZERO

    def price(units: Decimal, count: int, values: list[Decimal], cents: Decimal) -> charge_models.ChargeResult:
        return charge_models.compute(
            charge.charge_model,
            properties,
            units=units,
            events_count=count,
            event_values=values if with_values else None,
            precise_total_amount=from_cents(cents, currency),
        )

    priced_before = price(units, count, values, precise_cents)
    priced_after = price(units + increment, count + 1, [*values, own_value], precise_cents + own_cents)
    precise = max(priced_after.amount - priced_before.amount, ZERO)
    return billing.new_fee(
        subscription,
        currency,
        precise,
        fee_type=FeeType.CHARGE,
        charge=charge,
        charge_filter=bucket.charge_filter,
        units=increment,
        events_count=1,
        unit_amount=precise / increment if increment else ZERO,
        pay_in_advance=True,
        pay_in_advance_event_id=event.id,
        pay_in_advance_event_transaction_id=event.transaction_id,
        from_datetime=period.from_datetime,
        to_datetime=period.to_datetime,
        invoice_display_name=billing.display_name(charge, bucket),
        grouped_by=billing.grouped_by_values(group_key, group_value),
        amount_details={
            "units_before": billing.decimal_text(units),
            "units_after": billing.decimal_text(units + increment),
            "amount_before": billing.decimal_text(priced_before.amount),
            "amount_after": billing.decimal_text(priced_after.amount),
            "after": priced_after.details,
        },
    )


# --- the sweep: events whose announcement was lost ---------------------------------------------

DEFAULT_SWEEP_HOURS = 24
# Events younger than this are left to their announced task (in flight, not lost): the sweep
# racing it would only roll back at the fee's unique key, but costs both a pricing.
SWEEP_SETTLE = timedelta(minutes=2)


def sweep_hours() -> int:
    """How far back the sweep looks (settings.TOLLGATE_PAY_IN_ADVANCE_SWEEP_HOURS, default 24)."""
    return int(getattr(settings, "TOLLGATE_PAY_IN_ADVANCE_SWEEP_HOURS", DEFAULT_SWEEP_HOURS))


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
        page = selectors.missed_events(since=since, until=now, settled=now - SWEEP_SETTLE, after_id=after_id)
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
        if len(page) < selectors.SWEEP_PAGE:
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
