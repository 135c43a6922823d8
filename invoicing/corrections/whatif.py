"""What-if re-rating: an invoice's subscription-periods priced under another plan, with the
usage stored now, through the period run's fee computation. Computed in memory, saved nowhere."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Prefetch

from billing_project.money import round_amount, to_cents
from plans.models import Charge, ChargeFilter, Plan, Subscription

from .. import billing, totals
from ..errors import InvoicingError, NotFoundError
from ..models import Invoice, InvoicingReason

ZERO = Decimal(0)


def _plan(plan_code: Any) -> Plan:
    if not isinstance(plan_code, str) or not plan_code:
        raise InvoicingError.field("plan_code", "value_is_mandatory")
    charges = (
        Charge.objects.filter(deleted_at__isnull=True)
        .select_related("billable_metric")
        .prefetch_related(
            "taxes",
            "billable_metric__filters",
            Prefetch("filters", queryset=ChargeFilter.objects.filter(deleted_at__isnull=True)),
        )
        .order_by("created_at", "id")
    )
    plan = (
        Plan.objects.filter(code=plan_code, deleted_at__isnull=True)
        .prefetch_related("taxes", Prefetch("charges", queryset=charges))
        .first()
    )
    if plan is None:
        raise NotFoundError("plan")
    return plan


def invoice_rerate_under_plan(*, invoice: Invoice, plan_code: Any) -> dict[str, Any]:
    """{"plan_code", "currency", "fees": [...], "fees_amount_cents", "taxes_amount_cents",
    "total_amount_cents", "invoiced_total_amount_cents"}: what the invoice's periods cost under
    `plan_code` (its subscription fee and period-end charges; coupons and credits left out)."""
    from ..services import window_of

    plan = _plan(plan_code)
    currency = str(plan.amount.currency)
    if currency != invoice.currency:
        raise InvoicingError.field("plan_code", "currencies_does_not_match")
    fees = []
    for invoice_subscription in invoice.invoice_subscriptions.exclude(
        invoicing_reason=InvoicingReason.IN_ADVANCE_CHARGE
    ):
        subscription = billing.with_billing_relations(
            Subscription.objects.filter(pk=invoice_subscription.subscription_id)
        ).get()
        window = window_of(subscription, invoice_subscription)
        subscription.plan = plan  # in memory only: the periods stay the subscription's
        fees.extend(billing.subscription_fees(subscription, window))
    resolver = totals.TaxResolver(invoice.customer)
    lines = totals.taxes_compute(invoice=None, fees=fees, resolver=resolver, currency=currency)
    fees_amount = sum((fee.amount for fee in fees), ZERO)
    taxes_amount = sum((tax.amount for tax in lines.invoice_taxes), ZERO)
    return {
        "lago_invoice_id": str(invoice.pk),
        "plan_code": plan.code,
        "currency": currency,
        "fees": [
            {
                "fee_type": fee.fee_type,
                "lago_charge_id": str(fee.charge_id) if fee.charge_id else None,
                "invoice_display_name": fee.invoice_display_name,
                "units": str(fee.units),
                "events_count": fee.events_count,
                "amount_cents": to_cents(fee.amount, currency),
                "from_datetime": fee.from_datetime.isoformat() if fee.from_datetime else None,
                "to_datetime": fee.to_datetime.isoformat() if fee.to_datetime else None,
                "grouped_by": fee.grouped_by,
            }
            for fee in fees
        ],
        "fees_amount_cents": to_cents(round_amount(fees_amount, currency), currency),
        "taxes_amount_cents": to_cents(round_amount(taxes_amount, currency), currency),
        "total_amount_cents": to_cents(round_amount(fees_amount + taxes_amount, currency), currency),
        "invoiced_fees_amount_cents": to_cents(invoice.fees_amount, currency),
        "invoiced_total_amount_cents": to_cents(invoice.total_amount, currency),
    }
