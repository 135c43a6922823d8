"""At finalization, inside its transaction (invoice_finalized_in_tx): the lineage of the
invoice's fees, and the subscriptions' billed-through instants the late-usage trigger reads."""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection

from plans.models import Subscription

from .. import billing
from ..models import Fee, Invoice, InvoiceSubscription, InvoiceType, InvoicingReason
from . import lineage
from .models import BilledThrough, FeeEvent, LateUsageMark

logger = logging.getLogger(__name__)

_BILLED = BilledThrough._meta.db_table
_MARKS = LateUsageMark._meta.db_table


def invoice_lineage_write(*, invoice_id: Any) -> int:
    """Every period-end charge fee of a subscription invoice records the events it counted (one
    statement for the invoice), and each subscription's billed-through instant moves forward.

    The lineage is read after the fees' aggregation, in a later statement: an event committed
    in between would be listed without being counted. Each fee's events_count tells: a fee
    whose lineage disagrees loses it (and its subscription is marked), so the next round prices
    the whole period against what was invoiced and bills exactly what is missing."""
    from ..services import window_of

    invoice_subscriptions = list(
        InvoiceSubscription.objects.filter(invoice_id=invoice_id, charges_to_datetime__isnull=False).exclude(
            invoicing_reason=InvoicingReason.IN_ADVANCE_CHARGE
        )
    )
    if not invoice_subscriptions:
        return 0
    subscriptions = {
        s.pk: s
        for s in billing.with_billing_relations(
            Subscription.objects.filter(pk__in=[i.subscription_id for i in invoice_subscriptions])
        )
    }
    fees = list(Fee.objects.filter(invoice_id=invoice_id, pay_in_advance=False, charge__isnull=False))
    entries: list[lineage.Entry] = []
    billed: dict[str, Any] = {}
    for invoice_subscription in invoice_subscriptions:
        subscription = subscriptions[invoice_subscription.subscription_id]
        period = window_of(subscription, invoice_subscription).charges_period
        if period is None:
            continue
        external_id = subscription.external_id
        billed[external_id] = max(billed.get(external_id, period.to_datetime), period.to_datetime)
        for fee in fees:
            if fee.subscription_id != subscription.pk:
                continue
            scope = lineage.fee_scope(fee, subscription, period)
            if scope is not None:
                entries.append(lineage.Entry(tag=len(entries), fee_id=fee.pk, root_id=fee.pk, scope=scope))
    selected = lineage.lineage_insert(entries)
    by_tag = {entry.tag: entry for entry in entries}
    fees_by_id = {fee.pk: fee for fee in fees}
    disagreeing = [
        by_tag[tag].fee_id
        for tag in by_tag
        if selected.get(tag, 0) != fees_by_id[by_tag[tag].fee_id].events_count and connection.vendor == "postgresql"
    ]
    if disagreeing:
        logger.warning("lineage: %s fee(s) of invoice %s saw events committed meanwhile", len(disagreeing), invoice_id)
        FeeEvent.objects.filter(root_fee_id__in=disagreeing).delete()
        for entry in entries:
            if entry.fee_id in disagreeing:
                _mark(entry.scope.external_subscription_id, entry.scope.usage_from)
    if billed and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_BILLED} (external_subscription_id, billed_until) "
                "SELECT * FROM unnest(%s::text[], %s::timestamptz[]) ORDER BY 1 "
                "ON CONFLICT (external_subscription_id) DO UPDATE "
                f"SET billed_until = GREATEST({_BILLED}.billed_until, EXCLUDED.billed_until)",
                [list(billed), list(billed.values())],
            )
    return sum(selected.values())


def _mark(external_subscription_id: str, earliest: Any) -> None:
    """Ask the next round to re-rate the subscription's periods ending after `earliest`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_MARKS} (external_subscription_id, earliest_timestamp, generation, created_at) "
            "VALUES (%s, %s, 1, clock_timestamp()) ON CONFLICT (external_subscription_id) DO UPDATE "
            f"SET earliest_timestamp = LEAST({_MARKS}.earliest_timestamp, EXCLUDED.earliest_timestamp), "
            f"generation = {_MARKS}.generation + 1",
            [external_subscription_id, earliest],
        )


def on_invoice_finalized(sender: Any, *, invoice_id: Any, **kwargs: Any) -> None:
    """invoice_finalized_in_tx: an original's lineage; a correction's pending decrease issued."""
    invoice_type = Invoice.objects.filter(pk=invoice_id).values_list("invoice_type", flat=True).first()
    if invoice_type == InvoiceType.SUBSCRIPTION:
        invoice_lineage_write(invoice_id=invoice_id)
    elif invoice_type == InvoiceType.CORRECTION:
        from .rerate import correction_invoice_finalized

        correction_invoice_finalized(invoice_id=invoice_id)
