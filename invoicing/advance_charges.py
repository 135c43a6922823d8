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
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from customers.models import Organization
from metrics.models import Event
from plans import periods
from plans.models import Charge, Subscription, SubscriptionStatus

from . import billing, numbering, selectors, services, totals
from .models import (
    Fee,
    FeeAppliedTax,
    Invoice,
    InvoiceEvent,
    InvoiceStatus,
    InvoiceSubscription,
    InvoiceType,
    InvoicingReason,
)

logger = logging.getLogger(__name__)

ACTOR = "system:pay_in_advance"
_UNIQUE = "fee_pay_in_advance_event_unique"


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
    found = selectors._with_local_timezones(list(rows))
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
        if _UNIQUE in str(error):
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
    """An invoice holding `fee` alone, finalized in this transaction (the fee's insert comes
    before the number is taken: a duplicate fails there and never burns a number)."""
    organization = Organization.current()
    customer = subscription.customer
    tz = periods.subscription_timezone(subscription)
    net_term = customer.applicable_net_payment_term(organization)
    issuing_date = services._local_date(event.timestamp, tz)
    invoice = Invoice(
        customer=customer,
        invoice_type=InvoiceType.SUBSCRIPTION,
        status=InvoiceStatus.DRAFT,
        number=numbering.draft_number(organization),
        currency=fee.currency,
        issuing_date=issuing_date,
        payment_due_date=issuing_date + timedelta(days=net_term),
        net_payment_term=net_term,
    )
    billing_period = periods.subscription_period(subscription, event.timestamp)
    # Foreign keys are checked at commit: the rows may point at the invoice inserted last.
    InvoiceSubscription.objects.create(
        invoice_id=invoice.pk,
        subscription=subscription,
        invoicing_reason=InvoicingReason.IN_ADVANCE_CHARGE,
        from_datetime=billing_period.from_datetime,
        to_datetime=billing_period.to_datetime,
        charges_from_datetime=fee.from_datetime,
        charges_to_datetime=fee.to_datetime,
        timestamp=event.timestamp,
    )
    totals.invoice_fees_save(invoice=invoice, fees=[fee], resolver=totals.TaxResolver(customer))
    payload: dict[str, Any] = {"reason": InvoicingReason.IN_ADVANCE_CHARGE, "event": event.transaction_id}
    events = [services._event(invoice, "created", actor, **payload, **services._totals_payload(invoice))]
    services._finalize_fields(invoice, organization=organization, now=now)
    events.append(
        services._event(invoice, "finalized", actor, number=invoice.number, **services._totals_payload(invoice))
    )
    invoice.save(force_insert=True)
    InvoiceEvent.objects.bulk_create(events)
    services._after_commit(invoice)
    return invoice
