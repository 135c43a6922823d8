"""What an invoice or credit note says, shared by its PDF and the API: the frozen customer and
issuer details, each line's name and item, money and date formatting, the templates' contexts.
Rendering, storing and signed links are invoicing.pdf's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from billing_project.money import format_money, format_precise
from customers.models import CUSTOMER_BILLING_FIELDS, ORGANIZATION_ISSUER_FIELDS, Customer, Organization

from .models import CreditNote, Fee, FeeType, Invoice, InvoiceStatus

# --------------------------------------------------------------------------------------------
# Presentation shared with the API


# Customer fields an invoice may freeze in its snapshot (they override the live customer's).
SNAPSHOT_FIELDS = CUSTOMER_BILLING_FIELDS


def customer_details(customer: Customer, snapshot: dict[str, Any] | None = None) -> dict[str, Any]:
    """The customer's billing details, the frozen ones first: an issued invoice shows whom it was
    issued to, even when the customer changed since."""
    details = {field: getattr(customer, field, "") or "" for field in SNAPSHOT_FIELDS}
    for key, value in (snapshot or {}).items():
        if key in details:
            details[key] = value if value is not None else ""
    return details


def frozen(invoice: Invoice, part: str) -> dict[str, Any] | None:
    """What finalization froze of the customer or of the organization (`part`), None on a draft.
    The snapshot is {"customer": {...}, "organization": {...}} (services.customer_snapshot)."""
    if invoice.finalized_at is None or not isinstance(invoice.customer_snapshot, dict):
        return None
    details = invoice.customer_snapshot.get(part)
    return details if isinstance(details, dict) else None


def invoice_customer_details(invoice: Invoice) -> dict[str, Any]:
    return customer_details(invoice.customer, frozen(invoice, "customer"))


ISSUER_FIELDS = ORGANIZATION_ISSUER_FIELDS


def issuer_details(invoice: Invoice, organization: Organization) -> dict[str, Any]:
    """The issuer as the invoice was issued by it (the live organization on a draft)."""
    details = {field: getattr(organization, field, "") or "" for field in ISSUER_FIELDS}
    for key, value in (frozen(invoice, "organization") or {}).items():
        if key in details:
            details[key] = value if value is not None else ""
    return details


def fee_item(fee: Fee) -> dict[str, Any]:
    """Lago's fee `item`: what the line bills (a metric, a plan, an add-on)."""
    code = name = item_id = item_type = None
    display = fee.invoice_display_name or None
    if fee.fee_type == FeeType.CHARGE and fee.charge is not None:
        metric = fee.charge.billable_metric
        code, name, item_id, item_type = metric.code, metric.name, str(metric.pk), "BillableMetric"
        display = display or fee.charge.invoice_display_name or None
    elif fee.fee_type == FeeType.SUBSCRIPTION and fee.subscription is not None:
        plan = fee.subscription.plan
        code, name, item_id, item_type = plan.code, plan.name, str(fee.subscription_id), "Subscription"
        display = display or plan.invoice_display_name or None
    elif fee.fee_type == FeeType.FIXED_CHARGE and fee.add_on is not None:
        add_on = fee.add_on
        code, name, item_id, item_type = add_on.code, add_on.name, str(fee.fixed_charge_id), "FixedCharge"
        display = display or add_on.invoice_display_name or None
    elif fee.add_on is not None:
        add_on = fee.add_on
        code, name, item_id, item_type = add_on.code, add_on.name, str(add_on.pk), "AddOn"
        display = display or add_on.invoice_display_name or None
    charge_filter = fee.charge_filter if fee.charge_filter_id is not None else None
    return {
        "type": fee.fee_type,
        "code": code,
        "name": name,
        "description": fee.description or None,
        "invoice_display_name": display or name,
        "filters": charge_filter.values if charge_filter is not None else None,
        "filter_invoice_display_name": (charge_filter.invoice_display_name or None) if charge_filter else None,
        "lago_item_id": item_id,
        "item_type": item_type,
        "grouped_by": {str(k): None if v is None else str(v) for k, v in (fee.grouped_by or {}).items()},
    }


def fee_line_name(fee: Fee) -> str:
    """What the invoice line is called (PDF, admin)."""
    item = fee_item(fee)
    name = item["invoice_display_name"] or item["code"] or fee.get_fee_type_display()
    if item["filter_invoice_display_name"]:
        name = f"{name} - {item['filter_invoice_display_name']}"
    elif item["filters"]:
        name = f"{name} - " + ", ".join(f"{k}: {'/'.join(map(str, v))}" for k, v in item["filters"].items())
    if fee.grouped_by:
        name = f"{name} ({', '.join(str(v) for v in fee.grouped_by.values())})"
    return name


# --------------------------------------------------------------------------------------------
# Formatting


# An invoice's `<name>_amount` columns, in the order an invoice adds them up (PDF and API).
INVOICE_AMOUNTS = (
    "fees",
    "coupons",
    "sub_total_excluding_taxes",
    "taxes",
    "sub_total_including_taxes",
    "credit_notes",
    "prepaid_credit",
    "total",
    "total_paid",
)


def format_units(units: Decimal | None) -> str:
    value = Decimal(units or 0).normalize()
    if value == value.to_integral_value():
        return f"{value:,.0f}"
    return f"{value:,f}"


def format_date(day: date | None) -> str:
    return f"{day:%b} {day.day}, {day.year}" if day else ""


def _local_day(moment: datetime | None, tz: str) -> date | None:
    return moment.astimezone(ZoneInfo(tz)).date() if moment else None


def _tiers(fee: Fee) -> list[dict[str, str]]:
    """The graduated (and volume) breakdown of a fee, from the charge model's amount_details."""
    details = fee.amount_details or {}
    rows = []
    for tier in details.get("tiers") or []:
        if not isinstance(tier, dict):
            continue
        upper = tier.get("to_value")
        lower = tier.get("from_value") or 0
        label = f"{format_units(Decimal(lower))} and above" if upper is None else f"{lower:,} - {upper:,}"
        rate = tier.get("per_unit_amount")
        rows.append(
            {
                "range": label,
                "units": format_units(Decimal(str(tier.get("units") or 0))),
                "unit_price": format_precise(Decimal(str(rate)), fee.currency) if rate is not None else "",
                "rate": f"{tier['rate']}%" if tier.get("rate") is not None else "",
                "flat": format_money(Decimal(str(tier.get("flat_amount") or 0)), fee.currency),
                "total": format_money(Decimal(str(tier.get("total") or 0)), fee.currency),
            }
        )
    return rows


# --------------------------------------------------------------------------------------------
# Documents


@dataclass
class Line:
    name: str
    description: str
    period: str
    units: str
    unit_price: str
    amount: str
    tiers: list[dict[str, str]]


def _lines(fees: list[Fee], tz: str) -> list[Line]:
    lines = []
    for fee in fees:
        period = ""
        if fee.from_datetime and fee.to_datetime:
            start = _local_day(fee.from_datetime, tz)
            end = _local_day(fee.to_datetime - timedelta(seconds=1), tz)
            period = f"{format_date(start)} - {format_date(end)}"
        lines.append(
            Line(
                name=fee_line_name(fee),
                description=fee.description,
                period=period,
                units=format_units(fee.units),
                unit_price=format_precise(fee.unit_amount, fee.currency),
                amount=format_money(fee.amount, fee.currency),
                tiers=_tiers(fee) if fee.fee_type == FeeType.CHARGE else [],
            )
        )
    return lines


def invoice_context(invoice: Invoice) -> dict[str, Any]:
    """Everything invoice.html shows, formatted (the template only lays it out)."""
    organization = issuer_details(invoice, Organization.current())
    currency = invoice.currency
    customer = invoice_customer_details(invoice)
    tz = customer.get("timezone") or organization["timezone"] or "UTC"
    fees = list(invoice.fees.all())
    credits = list(invoice.credits.all())
    money = {name: format_money(getattr(invoice, f"{name}_amount"), currency) for name in INVOICE_AMOUNTS}
    due = max(invoice.total_amount - invoice.total_paid_amount, Decimal(0))
    if invoice.status == InvoiceStatus.VOIDED:
        due = Decimal(0)
    return {
        "invoice": invoice,
        "organization": organization,
        "customer": customer,
        "title": "Invoice",
        "number": invoice.number,
        "watermark": {"draft": "DRAFT", "voided": "VOIDED", "failed": "FAILED"}.get(invoice.status, ""),
        "issuing_date": format_date(invoice.issuing_date),
        "payment_due_date": format_date(invoice.payment_due_date),
        "lines": _lines(fees, tz),
        "coupons": [
            {"name": credit.applied_coupon.coupon.name, "amount": format_money(-credit.amount, currency)}
            for credit in credits
            if credit.applied_coupon is not None
        ],
        "credit_notes": [
            {"name": credit.credit_note.number, "amount": format_money(-credit.amount, currency)}
            for credit in credits
            if credit.credit_note is not None
        ],
        "taxes": [
            {
                "name": applied.tax_name,
                "rate": format_units(applied.tax_rate),
                "base": format_money(applied.fees_amount, currency),
                "amount": format_money(applied.amount, currency),
            }
            for applied in invoice.applied_taxes.all()
        ],
        "money": money,
        "has_coupons": invoice.coupons_amount != 0,
        "has_credit_notes": invoice.credit_notes_amount != 0,
        "has_prepaid_credit": invoice.prepaid_credit_amount != 0,
        "has_payments": invoice.total_paid_amount != 0,
        "amount_due": format_money(due, currency),
        "footer": organization["invoice_footer"],
    }


def credit_note_context(credit_note: CreditNote) -> dict[str, Any]:
    invoice = credit_note.invoice
    organization = issuer_details(invoice, Organization.current())
    currency = credit_note.currency
    return {
        "credit_note": credit_note,
        "invoice": invoice,
        "organization": organization,
        "customer": invoice_customer_details(invoice),
        "title": "Credit note",
        "number": credit_note.number,
        "watermark": "VOIDED" if credit_note.voided_at else "",
        "issuing_date": format_date(credit_note.issuing_date),
        "reason": credit_note.get_reason_display(),
        "items": [
            {"name": fee_line_name(item.fee), "amount": format_money(item.amount, currency)}
            for item in credit_note.items.all()
        ],
        "taxes": [
            {
                "name": applied.tax_name,
                "rate": format_units(applied.tax_rate),
                "base": format_money(applied.base_amount, currency),
                "amount": format_money(applied.amount, currency),
            }
            for applied in credit_note.applied_taxes.all()
        ],
        "money": {
            name: format_money(getattr(credit_note, f"{name}_amount"), currency)
            for name in (
                "sub_total_excluding_taxes",
                "coupons_adjustment",
                "taxes",
                "total",
                "credit",
                "refund",
                "balance",
            )
        },
        "has_coupons_adjustment": credit_note.coupons_adjustment_amount != 0,
        "footer": organization["invoice_footer"],
    }
