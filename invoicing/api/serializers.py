"""Lago's JSON shapes for invoices, fees and current usage: DRF serializers parse requests (their
type errors leave in Lago's 422 shape), plain functions render answers from prefetched rows.

Amounts leave as integer `*_cents` (billing_project.money.to_cents); precise (unrounded)
figures leave as decimal strings, never floats.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from rest_framework import serializers

from billing_project.money import decimal_places, to_cents
from customers.api import serializers as customers_api
from customers.models import Customer, Organization, applicable_timezone
from plans.api.serializers import SubscriptionContext, iso, serialize_subscription

from ..documents import INVOICE_AMOUNTS, customer_details, fee_item, frozen
from ..models import Credit, Fee, FeePaymentStatus, FeeType, Invoice, InvoiceSubscription, PaymentStatus
from ..pdf import signed_file_url

# --------------------------------------------------------------------------------------------
# Requests


class MetadataInput(serializers.Serializer):
    id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=64)
    key = serializers.CharField(max_length=255)
    value = serializers.CharField(allow_blank=True, allow_null=True, max_length=10_000)


class FeeUpdateInput(serializers.Serializer):
    payment_status = serializers.ChoiceField(choices=FeePaymentStatus.values, required=False)


class InvoiceUpdateInput(serializers.Serializer):
    payment_status = serializers.ChoiceField(choices=PaymentStatus.values, required=False)
    metadata = serializers.ListField(child=MetadataInput(), required=False, max_length=100)


class StrictIntegerField(serializers.IntegerField):
    """An integer in the JSON, as Lago requires for `*_cents`: no strings, floats or booleans."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class OneOffFeeInput(serializers.Serializer):
    add_on_code = serializers.CharField(max_length=255)
    units = serializers.DecimalField(
        max_digits=30, decimal_places=10, required=False, allow_null=True, min_value=Decimal(0)
    )
    unit_amount_cents = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=10**15)
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=10_000)
    invoice_display_name = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=255)
    from_datetime = serializers.DateTimeField(required=False, allow_null=True)
    to_datetime = serializers.DateTimeField(required=False, allow_null=True)
    tax_codes = serializers.ListField(
        child=serializers.CharField(max_length=255), required=False, allow_null=True, max_length=100
    )


class OneOffInvoiceInput(serializers.Serializer):
    external_customer_id = serializers.CharField(max_length=255)
    currency = serializers.CharField(max_length=3, required=False, allow_blank=True, allow_null=True)
    fees = serializers.ListField(child=OneOffFeeInput(), min_length=1, max_length=500)


# --------------------------------------------------------------------------------------------
# Answers


def _cents(amount: Decimal | None, currency: str) -> int:
    return to_cents(amount or Decimal(0), currency)


def _precise_cents(amount: Decimal | None, currency: str) -> str:
    """An unrounded amount in minor units, as Lago's `precise_*_cents` (a decimal string)."""
    return _plain((amount or Decimal(0)).scaleb(decimal_places(currency)))


def _plain(value: Decimal | None) -> str:
    """Fixed-point text without an exponent or trailing zeros ("12.5", "0", "1000")."""
    if value is None:
        return "0"
    text = f"{Decimal(value).normalize():f}"
    return "0" if text in ("-0", "") else text


def _rate(value: Decimal | None) -> float:
    # Tax rates (not money) travel as JSON numbers, as Lago sends them.
    return float(value or 0)


def serialize_applied_tax(line: Any, currency: str) -> dict[str, Any]:
    """What Lago's applied tax objects share (on a fee, an invoice, a credit note, an estimate):
    the tax as applied and its amount. Each owner adds its ids and base."""
    return {
        "lago_tax_id": str(line.tax_id) if line.tax_id else None,
        "tax_name": line.tax_name,
        "tax_code": line.tax_code,
        "tax_rate": _rate(line.tax_rate),
        "tax_description": line.tax_description or None,
        "amount_cents": _cents(line.amount, currency),
        "amount_currency": currency,
    }


class InvoiceContext:
    """What rendering invoices needs once per request: the organization, the subscriptions'
    context, and the host links are built on (TOLLGATE_PUBLIC_URL outside a request)."""

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = base_url
        self.organization = Organization.current()
        self.subscriptions = SubscriptionContext()


def serialize_customer(
    customer: Customer, context: InvoiceContext, snapshot: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Lago's customer object; on a finalized invoice, the billing details frozen at finalization."""
    answer = customers_api.serialize_customer(customer, context.organization)
    if snapshot:
        for key, value in customer_details(customer, snapshot).items():
            answer[key] = value or None
        answer["applicable_timezone"] = applicable_timezone(answer["timezone"], context.organization)
    return answer


def _pay_in_advance(fee: Fee) -> bool:
    if fee.fee_type == FeeType.SUBSCRIPTION and fee.subscription is not None:
        return fee.subscription.plan.pay_in_advance
    return fee.pay_in_advance


def serialize_fee(fee: Fee, invoice: Invoice | None) -> dict[str, Any]:
    """Lago's fee object. `invoice` is passed so a fee inside an invoice needs no extra query;
    None for a fee of a pay-in-advance charge that is not invoiceable (it has no invoice)."""
    currency = fee.currency
    if invoice is not None:
        customer = invoice.customer
    else:
        assert fee.subscription is not None  # a fee outside an invoice is a subscription's charge fee
        customer = fee.subscription.customer
    sub_total_precise = fee.precise_amount - fee.precise_coupons_amount
    sub_total = fee.amount - fee.precise_coupons_amount
    answer = {
        "lago_id": str(fee.pk),
        "lago_charge_id": str(fee.charge_id) if fee.charge_id else None,
        "lago_charge_filter_id": str(fee.charge_filter_id) if fee.charge_filter_id else None,
        "lago_fixed_charge_id": None,
        "lago_invoice_id": str(fee.invoice_id) if fee.invoice_id else None,
        "lago_true_up_fee_id": None,
        "lago_true_up_parent_fee_id": None,
        "lago_original_fee_id": None,
        "lago_subscription_id": str(fee.subscription_id) if fee.subscription_id else None,
        "external_subscription_id": fee.subscription.external_id if fee.subscription is not None else None,
        "lago_customer_id": str(customer.pk),
        "external_customer_id": customer.external_id,
        "item": fee_item(fee),
        "pay_in_advance": _pay_in_advance(fee),
        "invoiceable": fee.charge.invoiceable if fee.charge is not None else True,
        "amount_cents": _cents(fee.amount, currency),
        "amount_currency": currency,
        "precise_amount": _plain(fee.precise_amount),
        "precise_total_amount": _plain(sub_total_precise + fee.taxes_precise_amount),
        "taxes_amount_cents": _cents(fee.taxes_amount, currency),
        "taxes_precise_amount": _plain(fee.taxes_precise_amount),
        "taxes_rate": _rate(fee.taxes_rate),
        "total_aggregated_units": _plain(fee.units),
        "total_amount_cents": _cents(fee.amount, currency) + _cents(fee.taxes_amount, currency),
        "total_amount_currency": currency,
        "units": _plain(fee.units),
        "description": fee.description or None,
        "precise_unit_amount": _plain(fee.unit_amount),
        "precise_coupons_amount_cents": _precise_cents(fee.precise_coupons_amount, currency),
        "sub_total_excluding_taxes_amount_cents": _cents(sub_total, currency),
        "sub_total_excluding_taxes_precise_amount_cents": _precise_cents(sub_total_precise, currency),
        "events_count": fee.events_count,
        # An invoiced fee is paid with its invoice; one without is set by PUT /fees/{id}.
        "payment_status": invoice.payment_status if invoice is not None else fee.payment_status,
        "created_at": iso(fee.created_at),
        "succeeded_at": iso(fee.succeeded_at) if invoice is None else None,
        "failed_at": iso(fee.failed_at) if invoice is None else None,
        "refunded_at": iso(fee.refunded_at) if invoice is None else None,
        "amount_details": fee.amount_details or {},
        "self_billed": False,
        "from_date": iso(fee.from_datetime),
        "to_date": iso(_last_second(fee.to_datetime)),
        "applied_taxes": [
            {
                "lago_id": str(applied.pk),
                "lago_fee_id": str(fee.pk),
                **serialize_applied_tax(applied, currency),
                "created_at": iso(applied.created_at),
            }
            for applied in fee.applied_taxes.all()
        ],
    }
    return answer


def _last_second(moment: datetime | None) -> datetime | None:
    """Periods are stored half-open [from, to); Lago shows their last second (…T23:59:59Z)."""
    return moment - timedelta(seconds=1) if moment is not None else None


def _billing_period(row: InvoiceSubscription) -> dict[str, Any]:
    charges_from = row.charges_from_datetime or row.from_datetime
    charges_to = row.charges_to_datetime or row.to_datetime
    return {
        "lago_subscription_id": str(row.subscription_id),
        "external_subscription_id": row.subscription.external_id,
        "lago_plan_id": str(row.subscription.plan_id),
        "subscription_from_datetime": iso(row.from_datetime),
        "subscription_to_datetime": iso(_last_second(row.to_datetime)),
        "charges_from_datetime": iso(charges_from),
        "charges_to_datetime": iso(_last_second(charges_to)),
        "invoicing_reason": row.invoicing_reason,
    }


def _credit(credit: Credit, invoice: Invoice) -> dict[str, Any]:
    if credit.applied_coupon is not None:
        coupon = credit.applied_coupon.coupon
        item = {
            "lago_item_id": str(coupon.pk),
            "type": "coupon",
            "code": coupon.code,
            "name": coupon.name,
            "description": coupon.description or None,
        }
    else:
        note = credit.credit_note
        assert note is not None  # a credit is a coupon's or a credit note's
        item = {
            "lago_item_id": str(note.pk),
            "type": "credit_note",
            "code": note.number,
            "name": note.number,
            "description": note.description or None,
        }
    return {
        "lago_id": str(credit.pk),
        "amount_cents": _cents(credit.amount, invoice.currency),
        "amount_currency": invoice.currency,
        "before_taxes": credit.before_taxes,
        "item": item,
        "invoice": {"lago_id": str(invoice.pk), "payment_status": invoice.payment_status},
    }


def serialize_metadata(invoice: Invoice) -> list[dict[str, Any]]:
    return [
        {
            "lago_id": item.get("lago_id") or item.get("id"),
            "key": item.get("key"),
            "value": item.get("value"),
            "created_at": item.get("created_at"),
        }
        for item in (invoice.metadata or [])
        if isinstance(item, dict)
    ]


def serialize_invoice(invoice: Invoice, context: InvoiceContext, *, full: bool = True) -> dict[str, Any]:
    """Lago's invoice object. A list answers the short form (customer, metadata, applied taxes),
    as Lago does; one invoice answers with its subscriptions, billing periods, fees and credits."""
    currency = invoice.currency
    cents = {field: _cents(getattr(invoice, f"{field}_amount"), currency) for field in INVOICE_AMOUNTS}
    snapshot = frozen(invoice, "customer")
    answer: dict[str, Any] = {
        "lago_id": str(invoice.pk),
        "billing_entity_code": None,
        "sequential_id": invoice.sequential_id,
        "number": invoice.number,
        "purchase_order_number": None,
        "issuing_date": invoice.issuing_date.isoformat(),
        "payment_due_date": invoice.payment_due_date.isoformat(),
        "net_payment_term": invoice.net_payment_term,
        "invoice_type": invoice.invoice_type,
        "status": invoice.status,
        "payment_status": invoice.payment_status,
        "payment_dispute_lost_at": iso(invoice.payment_dispute_lost_at),
        "payment_overdue": invoice.payment_overdue,
        "currency": currency,
        "fees_amount_cents": cents["fees"],
        "taxes_amount_cents": cents["taxes"],
        "progressive_billing_credit_amount_cents": 0,
        "coupons_amount_cents": cents["coupons"],
        "credit_notes_amount_cents": cents["credit_notes"],
        "sub_total_excluding_taxes_amount_cents": cents["sub_total_excluding_taxes"],
        "sub_total_including_taxes_amount_cents": cents["sub_total_including_taxes"],
        "total_amount_cents": cents["total"],
        "total_due_amount_cents": _cents(invoice.total_due_amount, currency),
        "total_paid_amount_cents": cents["total_paid"],
        "total_offsetted_credit_note_amount_cents": 0,
        "prepaid_credit_amount_cents": cents["prepaid_credit"],
        "prepaid_granted_credit_amount_cents": 0,
        "prepaid_purchased_credit_amount_cents": cents["prepaid_credit"],
        "file_url": signed_file_url(obj=invoice, base_url=context.base_url) if invoice.file else None,
        "xml_url": None,
        "web_url": None,
        "version_number": invoice.version_number,
        "self_billed": False,
        "created_at": iso(invoice.created_at),
        "updated_at": iso(invoice.updated_at),
        "voided_at": iso(invoice.voided_at),
        "customer": serialize_customer(invoice.customer, context, snapshot),
        "metadata": serialize_metadata(invoice),
        "applied_taxes": [
            {
                "lago_id": str(applied.pk),
                "lago_invoice_id": str(invoice.pk),
                **serialize_applied_tax(applied, currency),
                "fees_amount_cents": _cents(applied.fees_amount, currency),
                "created_at": iso(applied.created_at),
            }
            for applied in invoice.applied_taxes.all()
        ],
    }
    if full:
        periods = sorted(invoice.invoice_subscriptions.all(), key=lambda row: (row.from_datetime, row.created_at))
        seen: set[Any] = set()
        subscriptions = []
        for row in periods:
            if row.subscription_id not in seen:
                seen.add(row.subscription_id)
                subscriptions.append(serialize_subscription(row.subscription, context.subscriptions))
        answer["billing_periods"] = [_billing_period(row) for row in periods]
        answer["subscriptions"] = subscriptions
        answer["fees"] = [serialize_fee(fee, invoice) for fee in invoice.fees.all()]
        answer["credits"] = [_credit(credit, invoice) for credit in invoice.credits.all()]
        answer["error_details"] = []
        answer["applied_invoice_custom_sections"] = []
    return answer


def serialize_invoices(
    invoices: Iterable[Invoice], *, full: bool = False, base_url: str | None = None
) -> list[dict[str, Any]]:
    context = InvoiceContext(base_url)
    return [serialize_invoice(invoice, context, full=full) for invoice in invoices]


def serialize_fees(fees: Iterable[Fee]) -> list[dict[str, Any]]:
    return [serialize_fee(fee, fee.invoice) for fee in fees]


# --------------------------------------------------------------------------------------------
# Current usage


def _usage_fees(usage: Any) -> list[Fee]:
    fees = getattr(usage, "fees", None)
    if fees is None:
        fees = [fee for charge_usage in getattr(usage, "charges", []) for fee in charge_usage.fees]
    return [fee for fee in fees if fee.fee_type == FeeType.CHARGE and fee.charge_id is not None]


def _usage_figures(fees: list[Fee], currency: str) -> dict[str, Any]:
    units = sum((fee.units for fee in fees), Decimal(0))
    return {
        "units": _plain(units),
        "total_aggregated_units": _plain(units),
        "events_count": sum(fee.events_count for fee in fees),
        "amount_cents": sum(_cents(fee.amount, currency) for fee in fees),
        "pricing_unit_details": None,
        "presentation_breakdowns": [],
    }


def _usage_filters(fees: list[Fee], currency: str) -> list[dict[str, Any]]:
    by_filter: dict[Any, list[Fee]] = {}
    for fee in fees:
        by_filter.setdefault(fee.charge_filter_id, []).append(fee)
    if list(by_filter) == [None]:
        return []
    answer = []
    for group in by_filter.values():
        charge_filter = group[0].charge_filter if group[0].charge_filter_id else None
        answer.append(
            {
                **_usage_figures(group, currency),
                "invoice_display_name": charge_filter.invoice_display_name or None if charge_filter else None,
                "values": charge_filter.values if charge_filter else None,
            }
        )
    return answer


def serialize_customer_usage(usage: Any) -> dict[str, Any]:
    """Lago's customer_usage: the period's totals and one entry per charge (its filters and
    groups), rendered from the same unsaved fees the invoice of that period would hold."""
    currency = usage.currency
    by_charge: dict[Any, list[Fee]] = {}
    for fee in _usage_fees(usage):
        by_charge.setdefault(fee.charge_id, []).append(fee)
    charges_usage = []
    for fees in by_charge.values():
        charge = fees[0].charge
        assert charge is not None  # usage fees are charge fees
        metric = charge.billable_metric
        grouped: dict[str, list[Fee]] = {}
        for fee in fees:
            if fee.grouped_by:
                grouped.setdefault(repr(sorted(fee.grouped_by.items())), []).append(fee)
        charges_usage.append(
            {
                **_usage_figures(fees, currency),
                "amount_currency": currency,
                "charge": {
                    "lago_id": str(charge.pk),
                    "charge_model": charge.charge_model,
                    "invoice_display_name": charge.invoice_display_name or None,
                },
                "billable_metric": {
                    "lago_id": str(metric.pk),
                    "name": metric.name,
                    "code": metric.code,
                    "aggregation_type": metric.aggregation_type,
                },
                "filters": _usage_filters(fees, currency),
                "grouped_usage": [
                    {
                        **_usage_figures(group, currency),
                        "grouped_by": {str(k): None if v is None else str(v) for k, v in group[0].grouped_by.items()},
                        "filters": _usage_filters(group, currency),
                    }
                    for group in grouped.values()
                ],
            }
        )
    return {
        "from_datetime": iso(usage.from_datetime),
        "to_datetime": iso(_last_second(usage.to_datetime)),
        "issuing_date": usage.issuing_date.isoformat(),
        "lago_invoice_id": None,
        "currency": currency,
        "amount_cents": _cents(usage.amount, currency),
        "taxes_amount_cents": _cents(usage.taxes_amount, currency),
        "total_amount_cents": _cents(usage.total_amount, currency),
        "charges_usage": charges_usage,
    }
