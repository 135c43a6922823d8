"""What an event would cost before it is sent (Lago's POST /events/estimate_fees,
/events/estimate_instant_fees, /events/batch_estimate_instant_fees), for pay-in-advance charges.
Nothing is written: the event is an unsaved row, the fees are unsaved too.

- estimate_fees (Lago's Fees::EstimatePayInAdvanceService): the fee the event would get now on
  each pay-in-advance charge of the subscription's plan on its metric, by the very function that
  bills a stored event (advance_charges.pay_in_advance_fee: the increment of the charge model's
  amount the event causes within the period, every stored event counting as before it), taxed as
  a fee of that charge.
- estimate_instant_fees (Lago's Fees::EstimateInstant::PayInAdvanceService): a quick price of the
  event alone, standard and percentage charges only, untaxed, with no look at the period's usage:
  standard units x amount; percentage units x rate / 100 + fixed_amount, within the per
  transaction min and max (Lago's Charges::EstimateInstant::{Standard,Percentage}Service).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from billing_project.money import round_amount
from metrics.ingestion import parse_event
from metrics.models import Event
from metrics.selectors import event_numeric_value
from plans import charge_models
from plans.models import Charge, Subscription

from . import advance_charges, billing, buckets, totals
from .errors import InvoicingError, NotFoundError
from .models import Fee, FeeAppliedTax

ZERO = Decimal(0)
HUNDRED = Decimal(100)
# The unsaved event sorts after every stored one of the same instant (they all count as before).
_AFTER_EVERY_EVENT = 2**62
INSTANT_MODELS = ("standard", "percentage")


@dataclass
class EstimatedFee:
    fee: Fee
    taxes: list[FeeAppliedTax]
    transaction_id: str


def _event(data: Any, now: datetime) -> Event:
    """The event as sent, validated as ingestion validates it (a transaction id is optional
    here, as in Lago), timestamped now, unsaved."""
    if not isinstance(data, dict):
        raise InvoicingError.field("event", "value_is_invalid")
    raw = {**data, "transaction_id": data.get("transaction_id") or str(uuid.uuid4()), "timestamp": None}
    parsed, errors = parse_event(raw, now)
    if errors:
        raise InvoicingError(errors)
    assert parsed is not None  # no errors: parse_event gave an event
    return Event(
        id=_AFTER_EVERY_EVENT,
        transaction_id=parsed.transaction_id,
        external_subscription_id=parsed.external_subscription_id,
        code=parsed.code,
        timestamp=now,
        properties=parsed.properties,
        precise_total_amount_cents=parsed.precise_total_amount_cents,
        created_at=now,
    )


def _subscription(event: Event) -> Subscription:
    subscription = advance_charges.subscription_for_event(event)
    if subscription is None:
        raise NotFoundError("subscription")
    return subscription


def _charges(subscription: Subscription, code: str, *, models: tuple[str, ...] | None = None) -> list[Charge]:
    charges = [
        charge
        for charge in advance_charges.pay_in_advance_charges(subscription, code)
        if models is None or charge.charge_model in models
    ]
    if not charges:
        raise InvoicingError.field("code", "does_not_match_an_instant_charge")
    return charges


def fees_estimate(*, data: Any, now: datetime | None = None) -> list[EstimatedFee]:
    """The fees (with their taxes) `data`, an event, would cost if it arrived now."""
    now = now or timezone.now()
    event = _event(data, now)
    subscription = _subscription(event)
    resolver = totals.TaxResolver(subscription.customer)
    estimated = []
    for charge in _charges(subscription, event.code):
        fee = advance_charges.pay_in_advance_fee(subscription, charge, event)
        if fee is None:
            continue
        fee.pay_in_advance_event_id = None
        fee.created_at = now
        taxes = totals.taxes_compute(invoice=None, fees=[fee], resolver=resolver, currency=fee.currency)
        estimated.append(EstimatedFee(fee=fee, taxes=taxes.fee_taxes, transaction_id=event.transaction_id))
    return estimated


def _instant_units(charge: Charge, properties: dict[str, Any]) -> Decimal:
    """The event's units: its field's number, 1 for a metric without a field (Lago's base unit)."""
    field_name = charge.billable_metric.field_name
    if not field_name:
        return Decimal(1)
    value = event_numeric_value(properties, field_name)
    return value if value is not None else ZERO


def instant_amount(charge_model: str, properties: dict[str, Any], units: Decimal) -> Decimal:
    """Lago's instant estimate of `units` alone (never negative)."""
    if units < 0:
        return ZERO
    if charge_model == "standard":
        return units * Decimal(str(properties.get("amount") or 0))
    amount = units * Decimal(str(properties.get("rate") or 0)) / HUNDRED
    amount += Decimal(str(properties.get("fixed_amount") or 0))
    minimum, maximum = properties.get("per_transaction_min_amount"), properties.get("per_transaction_max_amount")
    if minimum not in (None, ""):
        amount = max(amount, Decimal(str(minimum)))
    if maximum not in (None, ""):
        amount = min(amount, Decimal(str(maximum)))
    return amount


def instant_fees_estimate(*, data: Any, now: datetime | None = None) -> list[EstimatedFee]:
    """Lago's instant estimate of one event on each standard or percentage pay-in-advance charge."""
    now = now or timezone.now()
    event = _event(data, now)
    subscription = _subscription(event)
    return [
        _instant_fee(subscription, charge, event, now)
        for charge in _charges(subscription, event.code, models=INSTANT_MODELS)
    ]


def batch_instant_fees_estimate(*, events: Any, now: datetime | None = None) -> list[EstimatedFee]:
    """The instant estimates of up to 100 events, per subscription; an event whose code no
    instant charge prices adds nothing (as Lago's batch), an unknown subscription is a 404."""
    now = now or timezone.now()
    if not isinstance(events, list) or not events:
        raise InvoicingError.field("events", "no_events")
    if len(events) > 100:
        raise InvoicingError.field("events", "too_many_events")
    parsed = [_event(data, now) for data in events]
    subscriptions: dict[str, Subscription] = {}
    estimated = []
    for event in parsed:
        subscription = subscriptions.get(event.external_subscription_id)
        if subscription is None:
            subscription = subscriptions[event.external_subscription_id] = _subscription(event)
        for charge in advance_charges.pay_in_advance_charges(subscription, event.code):
            if charge.charge_model in INSTANT_MODELS:
                estimated.append(_instant_fee(subscription, charge, event, now))
    return estimated


def _instant_fee(subscription: Subscription, charge: Charge, event: Event, now: datetime) -> EstimatedFee:
    bucket = buckets.event_bucket(charge, event.properties)
    properties = charge_models.properties_for(charge, bucket.charge_filter)
    units = max(_instant_units(charge, event.properties), ZERO)
    currency = billing.plan_currency(subscription)
    precise = instant_amount(charge.charge_model, properties, units)
    rounded = round_amount(precise, currency)
    fee = billing.new_fee(
        subscription,
        currency,
        precise,
        fee_type="charge",
        charge=charge,
        charge_filter=bucket.charge_filter,
        units=units,
        events_count=1,
        unit_amount=rounded / units if units and rounded else ZERO,
        pay_in_advance=True,
        invoice_display_name=billing.display_name(charge, bucket),
    )
    return EstimatedFee(fee=fee, taxes=[], transaction_id=event.transaction_id)
