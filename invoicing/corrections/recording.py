"""At finalization, inside its transaction (invoice_finalized_in_tx): the lineage of the
invoice's fees, and the subscriptions' billed-through instants the late-usage trigger reads."""

from __future__ import annotations

from typing import Any

from django.db import connection

from plans.models import Subscription

from .. import billing
from ..models import Fee, Invoice, InvoiceSubscription, InvoiceType, InvoicingReason
from . import lineage
from .models import BilledThrough

_BILLED = BilledThrough._meta.db_table


def invoice_lineage_write(*, invoice_id: Any) -> int:
    """Every period-end charge fee of a subscription invoice records the events it counted (one
    statement for the invoice), and each subscription's billed-through instant moves forward."""
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
    written = lineage.lineage_insert(entries)
    if billed and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_BILLED} (external_subscription_id, billed_until) "
                "SELECT * FROM unnest(%s::text[], %s::timestamptz[]) ORDER BY 1 "
                "ON CONFLICT (external_subscription_id) DO UPDATE "
                f"SET billed_until = GREATEST({_BILLED}.billed_until, EXCLUDED.billed_until)",
                [list(billed), list(billed.values())],
            )
    return written


def on_invoice_finalized(sender: Any, *, invoice_id: Any, **kwargs: Any) -> None:
    """invoice_finalized_in_tx: an original's lineage; a correction's pending decrease issued."""
    invoice_type = Invoice.objects.filter(pk=invoice_id).values_list("invoice_type", flat=True).first()
    if invoice_type == InvoiceType.SUBSCRIPTION:
        invoice_lineage_write(invoice_id=invoice_id)
    elif invoice_type == InvoiceType.CORRECTION:
        from .rerate import correction_invoice_finalized

        correction_invoice_finalized(invoice_id=invoice_id)
